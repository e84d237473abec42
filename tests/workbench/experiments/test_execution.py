"""Experiments on the real stack: a Celery worker runs the items, and a killed worker neither
loses nor repeats finished items."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.workbench.runs.helpers import simulated_pool
from workbench.experiments.arms import ArmChoice
from workbench.experiments.datasets import ItemInput
from workbench.experiments.models import Experiment, ExperimentStatus, ItemStatus
from workbench.experiments.services import dataset_create, experiment_create
from workbench.lib.stack import Stack
from workbench.runs.models import ProviderCall, Run, RunSource

pytestmark = pytest.mark.slow

SLOWISH = "sim-balanced@ttft=0.01,tps=25,tokens=20"  # about 0.8 s per answer


def _wait_until(check: Callable[[], bool], *, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _experiment(alice, workspace, models: list[str], items: int, concurrency: int) -> Experiment:
    pool = simulated_pool(workspace, alice, models, judge=None)
    dataset = dataset_create(
        workspace=workspace, user=alice, name="sums",
        items=[ItemInput(f"What is {i} + {i}?", str(2 * i), "number") for i in range(items)],
    )  # fmt: skip
    return experiment_create(
        workspace=workspace, user=alice, dataset=dataset,
        choice=ArmChoice(pool=pool, include_solos=False), concurrency=concurrency,
    )  # fmt: skip


def test_it_runs_every_item_through_the_worker(live_stack: Stack, alice, workspace) -> None:
    experiment = _experiment(alice, workspace, ["sim-fast@ttft=0.01,tps=0,tokens=10"], 5, 2)
    _wait_until(
        lambda: Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.FINISHED,
        what="the experiment to finish",
    )
    results = experiment.results.all()
    assert {r.status for r in results} == {ItemStatus.DONE}
    assert Run.objects.filter(source=RunSource.EXPERIMENT).count() == 5
    assert all(r.correct is False for r in results)  # simulated answers are not sums


def test_it_resumes_after_the_worker_is_killed_without_repeating_items(
    live_stack: Stack, alice, workspace
) -> None:
    """SIGKILL the worker with items in flight; a new worker finishes the experiment.

    The kill lands as a tick commits: often after it dispatched item runs but before their
    tasks were published, which used to strand them ``queued`` for ever (the experiment then
    never finished). The experiment hands such runs to a worker again; the new worker is
    told to do so after 3 s, to take over a dead worker's runs after 3 s of silence, and to
    resend a task sent 10 s ago whose run no worker has claimed.
    """
    experiment = _experiment(alice, workspace, [SLOWISH], 8, 2)
    _wait_until(
        lambda: experiment.results.filter(status=ItemStatus.DONE).count() >= 2,
        what="two items done",
    )
    live_stack.worker.kill()
    # What the dead worker left: finished items, and at least one item in flight.
    done_before = dict(
        experiment.results.filter(status=ItemStatus.DONE).values_list("pk", "run_id")
    )
    in_flight = list(
        experiment.results.filter(status=ItemStatus.RUNNING).values_list("pk", flat=True)
    )
    assert len(done_before) >= 2 and in_flight, (done_before, in_flight)
    finished_runs = list(done_before.values())
    calls_before = ProviderCall.objects.filter(run_id__in=finished_runs).count()
    live_stack.start_worker(
        "resume",
        CELERY_VISIBILITY_TIMEOUT_S="2",
        CELERY_RESTORE_INTERVAL_S="1",
        CELERY_RESTORE_THROTTLE="1",
        FUSION_REDISPATCH_AFTER_S="3",
        FUSION_TAKEOVER_AFTER_S="3",
        # A task the killed worker had taken but not yet claimed may be gone with it: resent
        # after 10 s here (5 minutes by default), as a broker that lost it would need.
        FUSION_QUEUED_RESEND_S="10",
    )
    _wait_until(
        lambda: Experiment.objects.get(pk=experiment.pk).status == ExperimentStatus.FINISHED,
        what="the experiment to finish after the restart",
        timeout=60,
    )
    results = list(experiment.results.all())
    assert {r.status for r in results} == {ItemStatus.DONE}, [r.detail for r in results]
    # Finished items kept their run, and those runs were not run again.
    assert {r.pk: r.run_id for r in results if r.pk in done_before} == done_before
    assert set(Run.objects.filter(pk__in=finished_runs).values_list("attempts", flat=True)) == {1}
    assert ProviderCall.objects.filter(run_id__in=finished_runs).count() == calls_before
    # No item got a second run.
    assert Run.objects.filter(source=RunSource.EXPERIMENT).count() == 8
    assert len({r.run_id for r in results}) == 8
