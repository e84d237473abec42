from __future__ import annotations

import pytest

from workbench.experiments import checkers
from workbench.experiments.checkers import CheckerError, grade


def test_it_matches_exactly_ignoring_case_whitespace_and_punctuation() -> None:
    assert grade("exact", "  Paris! ", "paris").correct is True
    assert grade("exact", "The answer is Paris", "Paris").correct is False
    assert checkers.normalize("Hello,   World!") == "hello world"


def test_it_checks_containment_normalised() -> None:
    assert grade("contains", "I think it's CANBERRA, not Sydney.", "Canberra").correct is True
    assert grade("contains", "Sydney", "Canberra").correct is False


def test_it_searches_a_regular_expression_from_args_or_expected() -> None:
    assert grade("regex", "It was in 1969.", "", {"pattern": r"\b1969\b"}).correct is True
    assert grade("regex", "It was in 19690.", "", {"pattern": r"\b1969\b"}).correct is False
    assert grade("regex", "YES", "^yes$", {"flags": "i"}).correct is True
    with pytest.raises(CheckerError, match="does not compile"):
        grade("regex", "x", "(", {})


def test_it_compares_the_last_number_within_a_tolerance() -> None:
    assert grade("number", "17 × 23 = 391", "391").correct is True
    assert grade("number", "First 12, then finally 1,000.5", "1000.5").correct is True
    assert grade("number", "about 1.414", "1.41", {"tolerance": 0.005}).correct is True
    assert grade("number", "about 1.42", "1.41", {"tolerance": 0.005}).correct is False
    assert grade("number", "105", "100", {"relative": 0.05}).correct is True
    result = grade("number", "no idea", "4")
    assert result.correct is False and result.detail == "no number in the answer"
    assert checkers.extract("number", "x = 4.0") == "4"


def test_it_validates_json_against_a_schema() -> None:
    schema = {
        "type": "object",
        "required": ["city", "n"],
        "properties": {"city": {"type": "string"}, "n": {"type": "number"},
                       "tags": {"type": "array", "items": {"enum": ["a", "b"]}}},
        "additionalProperties": False,
    }  # fmt: skip
    args = {"schema": schema}
    assert grade("json_schema", '{"city": "Tokyo", "n": 14}', "", args).correct is True
    assert grade(
        "json_schema", 'Sure!\n```json\n{"city": "Tokyo", "n": 1.5}\n```', "", args
    ).correct
    missing = grade("json_schema", '{"city": "Tokyo"}', "", args)
    assert missing.correct is False and "missing 'n'" in missing.detail
    assert grade("json_schema", '{"city": 1, "n": 2}', "", args).correct is False
    assert grade("json_schema", '{"city": "a", "n": 2, "x": 1}', "", args).correct is False
    assert grade("json_schema", '{"city": "a", "n": 2, "tags": ["c"]}', "", args).correct is False
    assert grade("json_schema", "no json here", "", args).correct is False
    with pytest.raises(CheckerError, match="unsupported keyword"):
        grade("json_schema", "{}", "", {"schema": {"minLength": 3}})


def test_it_extracts_a_choice_letter() -> None:
    assert grade("choice", "Let me think. The answer is (C).", "C").correct is True
    assert grade("choice", "Answer: b", "B").correct is True
    assert grade("choice", "**D**", "D").correct is True
    assert grade("choice", "I would pick a number", "A").correct is False
    assert checkers.choice_letter("Between A and B, I choose B") == "B"


def test_it_leaves_human_checked_items_ungraded() -> None:
    result = grade("human", "A poem", "")
    assert result.correct is None


def test_it_rejects_broken_configurations() -> None:
    with pytest.raises(CheckerError, match="unknown checker"):
        checkers.checker_validate("fuzzy", "x", {})
    with pytest.raises(CheckerError, match="needs an expected answer"):
        checkers.checker_validate("exact", "", {})
    with pytest.raises(CheckerError, match="not a number"):
        checkers.checker_validate("number", "four", {})
    with pytest.raises(CheckerError, match="letter"):
        checkers.checker_validate("choice", "F", {})
