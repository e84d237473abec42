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
    assert missing.correct is False and "'n' is a required property" in missing.detail
    assert grade("json_schema", '{"city": 1, "n": 2}', "", args).correct is False
    assert grade("json_schema", '{"city": "a", "n": 2, "x": 1}', "", args).correct is False
    wrong_tag = grade("json_schema", '{"city": "a", "n": 2, "tags": ["c"]}', "", args)
    assert wrong_tag.correct is False and "$.tags[0]" in wrong_tag.detail
    assert grade("json_schema", "no json here", "", args).correct is False


def test_it_applies_all_of_json_schema_through_the_library() -> None:
    """Keywords the old hand-written subset refused (or would have ignored) now count."""
    schema = {
        "type": "object",
        "$defs": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
        "properties": {
            "name": {"type": "string", "minLength": 3},
            "airport": {"$ref": "#/$defs/code"},
            "runways": {"type": "integer", "minimum": 1, "maximum": 9},
        },
        "required": ["name", "airport"],
    }
    args = {"schema": schema}
    assert grade(
        "json_schema", '{"name": "Haneda", "airport": "HND", "runways": 4}', "", args
    ).correct
    assert not grade("json_schema", '{"name": "Ha", "airport": "HND"}', "", args).correct
    assert not grade("json_schema", '{"name": "Haneda", "airport": "hnd"}', "", args).correct
    assert not grade("json_schema", '{"name": "Haneda", "airport": "HND", "runways": 0}', "",
                     args).correct  # fmt: skip
    # The draft a schema names is the draft applied: draft 7 reads "dependencies".
    draft7 = {"$schema": "http://json-schema.org/draft-07/schema#",
              "dependencies": {"a": ["b"]}}  # fmt: skip
    assert not grade("json_schema", '{"a": 1}', "", {"schema": draft7}).correct
    assert grade("json_schema", '{"a": 1, "b": 2}', "", {"schema": draft7}).correct


def test_it_rejects_invalid_schemas_and_remote_references() -> None:
    with pytest.raises(CheckerError, match="not valid JSON Schema"):
        checkers.checker_validate("json_schema", "", {"schema": {"type": "text"}})
    with pytest.raises(CheckerError, match="not valid JSON Schema"):
        checkers.checker_validate("json_schema", "", {"schema": {"minLength": -1}})
    # Never fetched: no network from a checker.
    with pytest.raises(CheckerError, match="only local refs"):
        checkers.checker_validate(
            "json_schema", "", {"schema": {"$ref": "http://127.0.0.1:9/evil.json"}}
        )
    with pytest.raises(CheckerError, match="needs args"):
        checkers.checker_validate("json_schema", "", {})


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


def test_it_leaves_judge_items_to_the_judge_and_needs_an_answer_or_rubric() -> None:
    result = grade("judge", "Because of Rayleigh scattering.", "scattering", {"rubric": "x"})
    assert result.correct is None and "judge" in result.detail
    checkers.checker_validate("judge", "", {"rubric": "Correct if it names scattering."})
    checkers.checker_validate("judge", "Rayleigh scattering", {})
    with pytest.raises(CheckerError, match="expected answer, a rubric"):
        checkers.checker_validate("judge", "", {})
    with pytest.raises(CheckerError, match="rubric is text"):
        checkers.checker_validate("judge", "x", {"rubric": ["not", "text"]})
    assert checkers.CHECKER_LABELS["judge"] == "Judge (rubric)"
