"""Checkers: does an answer match what a dataset item expects?

Pure functions (no Django, no I/O), so they are easy to test and to reuse. Each checker can
also *extract* the part of an answer it compares (a number, a letter, normalised text): the
self-consistency arm votes over these extracts, so two answers that say "42" in different
words count as the same vote.

- ``exact``: normalised equality (case, whitespace and punctuation ignored);
- ``contains``: the expected text appears in the answer (normalised);
- ``regex``: ``args.pattern`` (or the expected text) is found in the answer; ``args.flags``
  may hold "i", "m", "s";
- ``number``: the last number in the answer is within ``args.tolerance`` (absolute, default
  1e-6) of the expected number, or ``args.relative`` (a fraction of it);
- ``json_schema``: the answer holds JSON that satisfies ``args.schema`` (a small subset of JSON
  Schema: type, required, properties, additionalProperties, enum, items);
- ``choice``: the letter A–E the answer picks equals the expected letter;
- ``human``: people grade it later; the answer is recorded as ungraded.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

EXACT = "exact"
CONTAINS = "contains"
REGEX = "regex"
NUMBER = "number"
JSON_SCHEMA = "json_schema"
CHOICE = "choice"
HUMAN = "human"

CHECKER_LABELS: dict[str, str] = {
    EXACT: "Exact match",
    CONTAINS: "Contains",
    REGEX: "Regular expression",
    NUMBER: "Number within tolerance",
    JSON_SCHEMA: "JSON matching a schema",
    CHOICE: "Choice letter (A–E)",
    HUMAN: "Human (graded later)",
}
CHECKERS = frozenset(CHECKER_LABELS)
# Checkers that need an expected answer to compare with.
NEEDS_EXPECTED = frozenset({EXACT, CONTAINS, NUMBER, CHOICE})

MAX_PATTERN_CHARS = 500
# Long answers are cut before regex search: Python's re has no timeout, and a pathological
# pattern over megabytes of text would hold a worker.
MAX_ANSWER_CHARS = 50_000
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_CHOICE_LEAD = re.compile(
    r"(?:answer|choice|option)\s*(?:is|:|=)?\s*[\(\[\*]*\s*([A-E])\b", re.IGNORECASE
)
_CHOICE_ANY = re.compile(r"(?<![A-Za-z])[\(\[\*]*([A-E])[\)\]\*]*(?![A-Za-z])")


class CheckerError(ValueError):
    """The checker's configuration is not usable (an unknown name, a bad pattern …)."""


@dataclass(frozen=True)
class Grade:
    correct: bool | None  # None: not graded (human)
    extracted: str  # what the checker read from the answer; the key of a majority vote
    detail: str = ""


def normalize(text: str) -> str:
    """Lower case, no punctuation, single spaces: "  The Answer: Paris! " -> "the answer paris"."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in text)
    return " ".join(text.split())


def checker_validate(kind: str, expected: str, args: dict[str, Any]) -> None:
    """Raise ``CheckerError`` unless ``kind``, ``expected`` and ``args`` can grade answers."""
    if kind not in CHECKERS:
        raise CheckerError(f"unknown checker {kind!r}; use one of {', '.join(sorted(CHECKERS))}")
    if not isinstance(args, dict):
        raise CheckerError("checker args must be a JSON object")
    if kind in NEEDS_EXPECTED and not expected.strip():
        raise CheckerError(f"the {kind} checker needs an expected answer")
    if kind == REGEX:
        _pattern(expected, args)
    elif kind == NUMBER:
        if parse_number(expected) is None:
            raise CheckerError(f"the expected answer {expected[:40]!r} is not a number")
        for name in ("tolerance", "relative"):
            value = args.get(name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise CheckerError(f"{name} must be a number of 0 or more")
    elif kind == JSON_SCHEMA:
        schema = args.get("schema")
        if not isinstance(schema, dict):
            raise CheckerError('the json_schema checker needs args {"schema": {...}}')
        schema_check(schema)
    elif kind == CHOICE and expected.strip().upper() not in {"A", "B", "C", "D", "E"}:
        raise CheckerError("the expected answer of a choice checker is a letter A–E")


def _pattern(expected: str, args: dict[str, Any]) -> re.Pattern[str]:
    pattern = args.get("pattern", expected)
    if not isinstance(pattern, str) or not pattern:
        raise CheckerError("the regex checker needs a pattern (args.pattern or the expected text)")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise CheckerError(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    flags = 0
    for letter in str(args.get("flags", "")):
        if letter not in _FLAGS:
            raise CheckerError(f"unknown regex flag {letter!r}; use i, m or s")
        flags |= _FLAGS[letter]
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise CheckerError(f"the pattern does not compile: {exc}") from None


def parse_number(text: str) -> float | None:
    text = text.strip().replace(",", "")
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def last_number(answer: str) -> float | None:
    """The last number written in the answer: models tend to reason first and conclude last."""
    found = _NUMBER.findall(answer)
    return parse_number(found[-1]) if found else None


def choice_letter(answer: str) -> str:
    """The option letter an answer picks: "The answer is (C)" -> "C"; "" when none."""
    lead = _CHOICE_LEAD.findall(answer)
    if lead:
        return lead[-1].upper()
    # Lowercase letters are words ("a"), so only capitals count when there is no "answer:".
    loose = _CHOICE_ANY.findall(answer.strip())
    return loose[-1] if loose else ""


def extract_json(answer: str) -> tuple[bool, Any]:
    """The JSON value in an answer: the whole text, a fenced block, or the first {...}/[...]."""
    text = answer.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    attempts = [text] + ([fenced.group(1).strip()] if fenced else [])
    for attempt in attempts:
        try:
            return True, json.loads(attempt)
        except ValueError:
            pass
    decoder = json.JSONDecoder()
    for index, ch in enumerate(text):
        if ch in "{[":
            try:
                return True, decoder.raw_decode(text, index)[0]
            except ValueError:
                continue
    return False, None


def _format_number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def extract(kind: str, answer: str, expected: str = "", args: dict[str, Any] | None = None) -> str:
    """The part of ``answer`` the checker compares, as text (a vote key)."""
    args = args or {}
    answer = answer[:MAX_ANSWER_CHARS]
    if kind == NUMBER:
        value = last_number(answer)
        return "" if value is None else _format_number(value)
    if kind == CHOICE:
        return choice_letter(answer)
    if kind == REGEX:
        try:
            match = _pattern(expected, args).search(answer)
        except CheckerError:
            match = None
        return match.group(0) if match else ""
    if kind == JSON_SCHEMA:
        ok, value = extract_json(answer)
        return json.dumps(value, sort_keys=True) if ok else ""
    return normalize(answer)


def grade(kind: str, answer: str, expected: str = "", args: dict[str, Any] | None = None) -> Grade:
    """Grade one answer. Raises ``CheckerError`` only for a broken configuration."""
    args = args or {}
    checker_validate(kind, expected, args)
    answer = answer[:MAX_ANSWER_CHARS]
    if kind == HUMAN:
        return Grade(None, normalize(answer), "left for people to grade")
    if kind == EXACT:
        got = normalize(answer)
        return Grade(got == normalize(expected), got)
    if kind == CONTAINS:
        got = normalize(answer)
        return Grade(normalize(expected) in got, got)
    if kind == REGEX:
        match = _pattern(expected, args).search(answer)
        return Grade(match is not None, match.group(0) if match else "")
    if kind == NUMBER:
        value, want = last_number(answer), parse_number(expected)
        assert want is not None  # checked by checker_validate
        if value is None:
            return Grade(False, "", "no number in the answer")
        tolerance = float(args.get("tolerance", 1e-6))
        if args.get("relative") is not None:
            tolerance = max(tolerance, abs(want) * float(args["relative"]))
        return Grade(abs(value - want) <= tolerance, _format_number(value))
    if kind == CHOICE:
        letter = choice_letter(answer)
        return Grade(letter == expected.strip().upper(), letter, "" if letter else "no letter")
    # JSON_SCHEMA
    ok, value = extract_json(answer)
    if not ok:
        return Grade(False, "", "no JSON in the answer")
    problems = schema_errors(value, args["schema"])
    return Grade(not problems, json.dumps(value, sort_keys=True), "; ".join(problems[:3]))


# --- a small JSON Schema subset ------------------------------------------------------------------

_TYPES = {"string", "number", "integer", "boolean", "object", "array", "null"}
_KEYWORDS = {
    "type",
    "required",
    "properties",
    "additionalProperties",
    "enum",
    "items",
    "$schema",
    "title",
    "description",
}


def schema_check(schema: dict[str, Any], path: str = "$") -> None:
    """Raise ``CheckerError`` when the schema uses what the validator does not understand:
    a keyword silently ignored would pass answers it should fail."""
    unknown = set(schema) - _KEYWORDS
    if unknown:
        raise CheckerError(f"schema at {path}: unsupported keyword {sorted(unknown)[0]!r}")
    types = schema.get("type")
    for name in [types] if isinstance(types, str) else types or []:
        if name not in _TYPES:
            raise CheckerError(f"schema at {path}: unknown type {name!r}")
    if "enum" in schema and not isinstance(schema["enum"], list):
        raise CheckerError(f"schema at {path}: enum must be a list")
    if "required" in schema and not (
        isinstance(schema["required"], list) and all(isinstance(r, str) for r in schema["required"])
    ):
        raise CheckerError(f"schema at {path}: required must be a list of names")
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            raise CheckerError(f"schema at {path}.{name}: must be an object")
        schema_check(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        schema_check(schema["items"], f"{path}[]")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        schema_check(extra, f"{path}.*")


def _is_type(value: Any, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if name == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if name == "string":
        return isinstance(value, str)
    if name == "array":
        return isinstance(value, list)
    return isinstance(value, dict)  # object


def schema_errors(value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it conforms)."""
    errors: list[str] = []
    types = schema.get("type")
    if types is not None:
        names = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, name) for name in names):
            return [f"{path}: expected {' or '.join(names)}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: not one of {schema['enum']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append(f"{path}: missing {name!r}")
        properties = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                errors += schema_errors(item, properties[name], f"{path}.{name}")
            elif extra is False:
                errors.append(f"{path}: unexpected {name!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, f"{path}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            errors += schema_errors(item, schema["items"], f"{path}[{index}]")
    return errors
