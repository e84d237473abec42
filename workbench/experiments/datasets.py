"""Reading dataset files (JSONL or CSV) into items, all checked before anything is stored.

Pure: bytes in, items or every problem (with its line number) out. ``services.dataset_create``
stores the items in one transaction, so a bad file never leaves half a dataset behind.

JSONL: one object per line, ``{"prompt": …, "expected": …, "checker": …, "checker_args": {…}}``
(``answer`` and ``args`` are accepted as aliases; ``id`` and ``metadata`` are ignored).
CSV: a header row with a ``prompt`` column and optionally ``expected``, ``checker`` and
``checker_args`` (a JSON object in the cell). Without a checker, an item with an expected
answer is graded by exact match, one without by people.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from workbench.experiments.checkers import EXACT, HUMAN, CheckerError, checker_validate

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ITEMS = 2000
MAX_PROMPT_CHARS = 20_000
MAX_EXPECTED_CHARS = 5_000
MAX_ERRORS_SHOWN = 20

_ALIASES = {"answer": "expected", "args": "checker_args"}
_KNOWN = {"prompt", "expected", "checker", "checker_args"}
_IGNORED = {"id", "metadata"}


@dataclass(frozen=True)
class ItemInput:
    prompt: str
    expected: str = ""
    checker: str = ""
    checker_args: dict[str, Any] = field(default_factory=dict)


class DatasetFileError(ValueError):
    """Everything wrong with a file; ``problems`` are (line, reason), line 0 for the whole file."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        super().__init__(self.message)

    @property
    def lines(self) -> list[str]:
        shown = [f"Line {line}: {reason}" if line else reason for line, reason in self.problems]
        shown = shown[:MAX_ERRORS_SHOWN]
        if len(self.problems) > MAX_ERRORS_SHOWN:
            shown.append(f"… and {len(self.problems) - MAX_ERRORS_SHOWN} more.")
        return shown

    @property
    def message(self) -> str:
        count = len(self.problems)
        head = "The file was not imported" + (
            f" ({count} problems); nothing was saved." if count > 1 else "; nothing was saved."
        )
        return f"{head} {self.lines[0]}"


def item_clean(raw: dict[str, Any]) -> ItemInput:
    """One item from its fields; raises ``ValueError`` with a reason to show."""
    fields = {_ALIASES.get(k, k): v for k, v in raw.items() if k not in _IGNORED}
    unknown = sorted(set(fields) - _KNOWN)
    if unknown:
        raise ValueError(
            f"unknown field {unknown[0]!r} (use prompt, expected, checker, checker_args)"
        )
    prompt = fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is missing or empty")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"the prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}"
        )
    expected = fields.get("expected")
    if expected is None:
        expected = ""
    elif isinstance(expected, bool) or not isinstance(expected, str | int | float):
        raise ValueError("expected must be text or a number")
    expected = str(expected).strip()
    if len(expected) > MAX_EXPECTED_CHARS:
        raise ValueError(f"the expected answer is longer than {MAX_EXPECTED_CHARS:,} characters")
    checker = fields.get("checker") or (EXACT if expected else HUMAN)
    if not isinstance(checker, str):
        raise ValueError("checker must be a name such as exact, number or regex")
    args = fields.get("checker_args") or {}
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            raise ValueError("checker_args is not valid JSON") from None
    try:
        checker_validate(checker.strip(), expected, args)
    except CheckerError as exc:
        raise ValueError(str(exc)) from None
    return ItemInput(
        prompt=prompt.strip(), expected=expected, checker=checker.strip(), checker_args=args
    )


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetFileError([(line, "the file is not UTF-8 text")]) from None


def _parse_jsonl(text: str) -> tuple[list[ItemInput], list[tuple[int, str]]]:
    items: list[ItemInput] = []
    problems: list[tuple[int, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except ValueError as exc:
            problems.append((number, f"not valid JSON ({exc.msg})"))
            continue
        if not isinstance(raw, dict):
            problems.append((number, "each line must be a JSON object with a prompt"))
            continue
        try:
            items.append(item_clean(raw))
        except ValueError as exc:
            problems.append((number, str(exc)))
    return items, problems


def _parse_csv(text: str) -> tuple[list[ItemInput], list[tuple[int, str]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in reader.fieldnames or []]
    except csv.Error as exc:
        return [], [(1, f"not valid CSV ({exc})")]
    if "prompt" not in header:
        return [], [(1, "the header row needs a 'prompt' column")]
    reader.fieldnames = header
    items: list[ItemInput] = []
    problems: list[tuple[int, str]] = []
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if None in row:
                problems.append((line, "more cells than the header has columns"))
                continue
            cells = {k: (v or "") for k, v in row.items() if k}
            if not any(v.strip() for v in cells.values()):
                continue
            # An empty cell means "not given", as a missing key does in JSONL.
            raw = {k: v for k, v in cells.items() if v.strip() or k == "prompt"}
            try:
                items.append(item_clean(raw))
            except ValueError as exc:
                problems.append((line, str(exc)))
    except csv.Error as exc:
        problems.append((line + 1, f"not valid CSV ({exc})"))
    return items, problems


def dataset_parse(filename: str, data: bytes) -> list[ItemInput]:
    """Every item of the file, or ``DatasetFileError`` with every problem found."""
    if len(data) > MAX_FILE_BYTES:
        size, limit = len(data) / 1e6, MAX_FILE_BYTES // 2**20
        raise DatasetFileError([(0, f"The file is {size:.1f} MB; the limit is {limit} MB.")])
    text = _decode(data)
    lower = filename.lower()
    if lower.endswith(".csv"):
        items, problems = _parse_csv(text)
    elif lower.endswith((".jsonl", ".ndjson", ".json")):
        items, problems = _parse_jsonl(text)
    else:
        raise DatasetFileError([(0, "Upload a .jsonl or a .csv file.")])
    if not problems and not items:
        problems.append((0, "The file has no items."))
    if len(items) > MAX_ITEMS:
        problems.append((0, f"The file has {len(items):,} items; the limit is {MAX_ITEMS:,}."))
    if problems:
        raise DatasetFileError(problems)
    return items
