from __future__ import annotations

import json

import pytest

from workbench.experiments.datasets import DatasetFileError, dataset_parse
from workbench.experiments.models import Dataset, DatasetItem
from workbench.experiments.services import dataset_import, dataset_install_sample


def _jsonl(*rows: object) -> bytes:
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows).encode()


def test_it_reads_jsonl_with_defaults_and_aliases() -> None:
    items = dataset_parse(
        "tasks.jsonl",
        _jsonl(
            {"prompt": "2+2?", "expected": 4, "checker": "number"},
            "",
            {"prompt": "Capital of France?", "answer": "Paris"},
            {"prompt": "A poem", "id": 7},
            {"prompt": "1969?", "checker": "regex", "args": {"pattern": "1969"}},
        ),
    )
    assert [(i.expected, i.checker) for i in items] == [
        ("4", "number"), ("Paris", "exact"), ("", "human"), ("", "regex"),
    ]  # fmt: skip
    assert items[3].checker_args == {"pattern": "1969"}


def test_it_reads_csv_with_json_args_in_a_cell() -> None:
    data = (
        b"prompt,expected,checker,checker_args\n"
        b'"What is 1/3, roughly?",0.33,number,"{""tolerance"": 0.01}"\n'
        b"Pick one,B,choice,\n"
    )
    items = dataset_parse("t.csv", data)
    assert items[0].checker_args == {"tolerance": 0.01}
    assert items[1].checker == "choice" and items[1].checker_args == {}


def test_it_reports_every_bad_line_with_its_number() -> None:
    data = _jsonl(
        {"prompt": "fine", "expected": "x"},
        "{not json",
        {"prompt": ""},
        {"prompt": "n", "expected": "four", "checker": "number"},
        {"prompt": "r", "checker": "regex", "checker_args": {"pattern": "("}},
        {"prompt": "u", "colour": "red"},
        ["a list"],
    )
    with pytest.raises(DatasetFileError) as caught:
        dataset_parse("bad.jsonl", data)
    lines = [line for line, _ in caught.value.problems]
    assert lines == [2, 3, 4, 5, 6, 7]
    text = "\n".join(caught.value.lines)
    assert "Line 2: not valid JSON" in text
    assert "Line 3: the prompt is missing or empty" in text
    assert "Line 4: the expected answer 'four' is not a number" in text
    assert "Line 6: unknown field 'colour'" in text


def test_it_reports_csv_problems_with_file_line_numbers() -> None:
    data = b'prompt,expected,checker\nok,1,number\n"multi\nline",x,number\n,,\nz,F,choice\n'
    with pytest.raises(DatasetFileError) as caught:
        dataset_parse("t.csv", data)
    assert [line for line, _ in caught.value.problems] == [4, 6]


def test_it_rejects_a_csv_without_a_prompt_column() -> None:
    with pytest.raises(DatasetFileError, match="'prompt' column"):
        dataset_parse("t.csv", b"question,answer\nq,a\n")


def test_it_enforces_size_and_type_limits(settings) -> None:
    from workbench.experiments import datasets

    with pytest.raises(DatasetFileError, match="limit is 5 MB"):
        dataset_parse("big.jsonl", b" " * (datasets.MAX_FILE_BYTES + 1))
    with pytest.raises(DatasetFileError, match=r"\.jsonl or a \.csv"):
        dataset_parse("tasks.xlsx", b"x")
    with pytest.raises(DatasetFileError, match="no items"):
        dataset_parse("empty.jsonl", b"\n\n")
    with pytest.raises(DatasetFileError, match="Line 2: the file is not UTF-8"):
        dataset_parse("latin.csv", "prompt\ncaf\xe9".encode("latin-1"))


def test_it_imports_nothing_when_one_line_is_bad(alice, workspace) -> None:
    data = _jsonl(*[{"prompt": f"q{i}", "expected": "x"} for i in range(50)], {"prompt": 3})
    with pytest.raises(DatasetFileError):
        dataset_import(workspace=workspace, user=alice, name="", filename="t.jsonl", data=data)
    assert Dataset.objects.count() == 0 and DatasetItem.objects.count() == 0


def test_it_imports_a_good_file_in_order(alice, workspace) -> None:
    data = _jsonl(*[{"prompt": f"q{i}", "expected": str(i)} for i in range(5)])
    dataset = dataset_import(
        workspace=workspace, user=alice, name="", filename="tasks.jsonl", data=data
    )
    assert dataset.name == "tasks" and dataset.item_count == 5
    assert list(dataset.items.values_list("prompt", flat=True)) == [f"q{i}" for i in range(5)]


def test_it_installs_the_sample_once(alice, workspace) -> None:
    first = dataset_install_sample(workspace=workspace, user=alice)
    again = dataset_install_sample(workspace=workspace, user=alice)
    assert first.pk == again.pk
    assert 10 <= first.items.count() <= 14
    assert {"number", "choice", "contains", "regex", "json_schema", "human", "exact"} <= set(
        first.items.values_list("checker", flat=True)
    )
