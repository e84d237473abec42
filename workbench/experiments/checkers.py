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
- ``json_schema``: the answer holds JSON that satisfies ``args.schema`` (any JSON Schema draft
  the ``jsonschema`` library knows, 2020-12 by default; only local ``$ref``);
- ``choice``: the letter A–E the answer picks equals the expected letter;
- ``judge``: a judge model grades the answer against the expected answer and ``args.rubric``
  (``grading`` builds its prompt and reads its grade; the scheduler makes the call as a run);
- ``human``: people grade it later; the answer is recorded as ungraded.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing.exceptions import Unresolvable

EXACT = "exact"
CONTAINS = "contains"
REGEX = "regex"
NUMBER = "number"
JSON_SCHEMA = "json_schema"
CHOICE = "choice"
HUMAN = "human"
JUDGE = "judge"

CHECKER_LABELS: dict[str, str] = {
    EXACT: "Exact match",
    CONTAINS: "Contains",
    REGEX: "Regular expression",
    NUMBER: "Number within tolerance",
    JSON_SCHEMA: "JSON matching a schema",
    CHOICE: "Choice letter (A–E)",
    JUDGE: "Judge (rubric)",
    HUMAN: "Human (graded later)",
}
# Short names for tables: "judge (rubric)" says a model, not a rule, decided.
CHECKER_SHORT: dict[str, str] = {JUDGE: "judge (rubric)", HUMAN: "human"}
# Checkers that no rule can decide: a model (judge) or people (human) grade the answer.
GRADED_LATER = frozenset({JUDGE, HUMAN})
MAX_RUBRIC_CHARS = 4_000
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
    elif kind == JUDGE:
        rubric = args.get("rubric", "")
        if not isinstance(rubric, str) or len(rubric) > MAX_RUBRIC_CHARS:
            raise CheckerError(f"the rubric is text of at most {MAX_RUBRIC_CHARS:,} characters")
        if not expected.strip() and not rubric.strip():
            raise CheckerError("the judge checker needs an expected answer, a rubric, or both")
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
    if kind == JUDGE:
        return Grade(None, normalize(answer), "left for the judge to grade")
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


# --- JSON Schema (the jsonschema library) ------------------------------------------------------

MAX_SCHEMA_CHARS = 20_000
_REF_KEYS = ("$ref", "$dynamicRef")


def _remote_refs(node: Any) -> list[str]:
    """References that point outside the schema itself (never fetched: no network from a
    checker, and an unresolvable reference would fail every answer)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYS and isinstance(value, str) and not value.startswith("#"):
                found.append(value)
            else:
                found += _remote_refs(value)
    elif isinstance(node, list):
        for value in node:
            found += _remote_refs(value)
    return found


def _validator_class(schema: dict[str, Any]) -> type[Validator]:
    # The draft the schema names in "$schema", 2020-12 when it names none.
    return validator_for(schema, default=Draft202012Validator)  # type: ignore[no-any-return]


def schema_check(schema: dict[str, Any]) -> None:
    """Raise ``CheckerError`` unless ``schema`` is a valid JSON Schema we can apply offline."""
    if len(json.dumps(schema)) > MAX_SCHEMA_CHARS:
        raise CheckerError(f"the schema is longer than {MAX_SCHEMA_CHARS:,} characters")
    remote = _remote_refs(schema)
    if remote:
        raise CheckerError(f"the schema refers to {remote[0]!r}; only local refs (#/...) work")
    try:
        _validator_class(schema).check_schema(schema)
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "the top"
        raise CheckerError(
            f"the schema is not valid JSON Schema at {where}: {exc.message}"
        ) from None


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    """Every way ``value`` breaks ``schema`` (empty when it conforms), shortest path first."""
    validator = _validator_class(schema)(schema)
    try:
        errors = sorted(validator.iter_errors(value), key=lambda e: (len(e.path), list(e.path)))
    except (Unresolvable, RecursionError) as exc:
        raise CheckerError(f"the schema cannot be applied: {exc}"[:300]) from None
    return [f"{e.json_path}: {e.message}"[:200] for e in errors]
