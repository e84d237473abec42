"""A pool of simulated models, the sample dataset, and finishing runs by hand (unit tests have
no worker: what a run answered is written straight into it)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.workbench.runs.helpers import simulated_pool
from workbench.experiments.datasets import ItemInput
from workbench.experiments.models import Dataset
from workbench.experiments.services import dataset_create
from workbench.pools.models import Pool
from workbench.runs.models import CandidateStatus, Run, RunStatus

FAST = "sim-fast@ttft=0.01,tps=0,tokens=10"
FAST2 = "sim-balanced@ttft=0.01,tps=0,tokens=10"


@pytest.fixture
def pool(alice, workspace) -> Pool:
    return simulated_pool(workspace, alice, [FAST, FAST2], judge="sim-judge@ttft=0.01,tps=0")


@pytest.fixture
def dataset(alice, workspace) -> Dataset:
    return dataset_create(
        workspace=workspace,
        user=alice,
        name="arith",
        items=[
            ItemInput("What is 2 + 2?", "4", "number"),
            ItemInput("What is 3 + 3?", "6", "number"),
            ItemInput("Write a haiku.", "", "human"),
        ],
    )


def finish(
    run: Run,
    *,
    fused: str = "",
    texts: list[str] | None = None,
    cost: str = "0.01",
    wall_ms: float = 100.0,
    status: str = RunStatus.FINISHED,
) -> None:
    """Write an outcome into a run as the worker would."""
    for candidate, text in zip(run.candidates.order_by("position"), texts or [], strict=False):
        candidate.text, candidate.status = text, CandidateStatus.DONE
        candidate.save()
    run.status, run.fused_text = status, fused
    run.total_cost, run.wall_ms = Decimal(cost), wall_ms
    run.save()
