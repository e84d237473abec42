from __future__ import annotations

import pytest

from tests.workbench.runs.helpers import start_run
from workbench.curation.models import Judgment
from workbench.experiments.models import DatasetSource
from workbench.experiments.services import dataset_from_gold
from workbench.lib.errors import ServiceError


def test_it_builds_a_dataset_from_gold_answers(alice, bob, workspace, pool) -> None:
    first = start_run(pool, alice, prompt="Capital of France?")
    second = start_run(pool, alice, prompt="6 × 7?")
    start_run(pool, alice, prompt="no gold here")
    Judgment.objects.create(run=first, user=alice, gold_answer="Paris")
    Judgment.objects.create(run=second, user=bob, gold_answer="42")
    dataset, left_out = dataset_from_gold(workspace=workspace, user=bob, checker="number")
    assert left_out == 1  # "Paris" is not a number
    assert dataset.source == DatasetSource.CURATED
    assert list(dataset.items.values_list("prompt", "expected", "checker")) == [
        ("6 × 7?", "42", "number")
    ]
    dataset, left_out = dataset_from_gold(workspace=workspace, user=bob, checker="contains")
    assert (dataset.item_count, left_out) == (2, 0)


def test_it_says_when_there_is_no_gold_answer(alice, workspace) -> None:
    with pytest.raises(ServiceError, match="No curated run has a gold answer"):
        dataset_from_gold(workspace=workspace, user=alice)
