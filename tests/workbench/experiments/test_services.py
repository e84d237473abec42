from __future__ import annotations

from decimal import Decimal

import pytest

from tests.workbench.experiments.conftest import finish
from workbench.experiments.arms import ArmChoice
from workbench.experiments.models import ArmKind, ExperimentStatus, ItemStatus
from workbench.experiments.results import experiment_results, results_csv, results_json
from workbench.experiments.services import (
    experiment_advance,
    experiment_cancel,
    experiment_create,
    experiment_pause,
    experiment_resume,
)
from workbench.lib.errors import ServiceError
from workbench.runs.models import Run, RunSource, RunStatus


def _create(alice, workspace, dataset, pool, **kwargs):
    choice = kwargs.pop("choice", None) or ArmChoice(pool=pool)
    return experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=choice, **kwargs
    )


def test_it_builds_the_arms_and_one_result_per_arm_and_item(alice, workspace, dataset, pool):
    experiment = _create(
        alice, workspace, dataset, pool,
        choice=ArmChoice(pool=pool, self_consistency=True, self_fusion=True, samples=3),
    )  # fmt: skip
    kinds = list(experiment.arms.values_list("kind", flat=True))
    assert kinds == [ArmKind.POOL, ArmKind.SOLO, ArmKind.SOLO,
                     ArmKind.SELF_CONSISTENCY, ArmKind.SELF_FUSION]  # fmt: skip
    assert experiment.results.count() == 5 * 3
    sc = experiment.arms.get(kind=ArmKind.SELF_CONSISTENCY)
    assert len(sc.config["spec"]["members"]) == 3 and sc.config["spec"]["judge"] is None
    sf = experiment.arms.get(kind=ArmKind.SELF_FUSION)
    assert sf.config["spec"]["mode"] == "merge" and sf.config["spec"]["judge"] is not None
    assert experiment.estimated_cost == sum(a.estimated_cost for a in experiment.arms.all())
    assert experiment.estimated_cost > 0


def test_it_refuses_to_start_over_the_budget_cap(alice, workspace, dataset, pool):
    with pytest.raises(ServiceError, match="over the cap") as caught:
        _create(alice, workspace, dataset, pool, budget_usd=Decimal("0.0001"))
    assert caught.value.code == "over_budget"


def test_it_dispatches_up_to_the_concurrency_limit(alice, workspace, dataset, pool):
    experiment = _create(alice, workspace, dataset, pool, concurrency=2)
    assert experiment_advance(experiment_id=experiment.pk) is True
    running = experiment.results.filter(status=ItemStatus.RUNNING)
    assert running.count() == 2
    assert all(r.run.source == RunSource.EXPERIMENT for r in running)
    # Nothing ended: a second tick dispatches nothing more.
    experiment_advance(experiment_id=experiment.pk)
    assert experiment.results.filter(status=ItemStatus.RUNNING).count() == 2
    assert Run.objects.count() == 2


def test_it_grades_ended_runs_and_finishes(alice, workspace, dataset, pool):
    experiment = _create(alice, workspace, dataset, pool, concurrency=20)
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("arm", "item", "run"):
        right = result.item.expected or "poem"
        if result.arm.kind == ArmKind.POOL:
            finish(result.run, fused=f"The answer is {right}")
        else:
            finish(result.run, texts=[f"I think {right if result.arm.position == 1 else 'x'}"])
    assert experiment_advance(experiment_id=experiment.pk) is False
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED
    results = experiment_results(experiment)
    by_label = {s.arm.kind + str(s.arm.position): s for s in results.arms}
    assert by_label["pool0"].correct == 2 and by_label["pool0"].graded == 2
    assert by_label["pool0"].ungraded == 1  # the haiku waits for people
    assert by_label["solo2"].correct == 0
    assert by_label["pool0"].cost_per_item == Decimal("0.01")
    assert by_label["pool0"].p50_ms == 100.0 and by_label["pool0"].p95_ms == 100.0
    # Wilson's 95% interval for 2 of 2: it does not claim certainty from two items.
    assert round(by_label["pool0"].ci_low, 3) == 0.342 and by_label["pool0"].ci_high == 1.0
    assert by_label["solo2"].ci_low == 0.0 and round(by_label["solo2"].ci_high, 3) == 0.658
    csv_text = results_csv(experiment)
    assert csv_text.splitlines()[0].startswith("item,prompt,expected")
    assert len(csv_text.splitlines()) == 1 + 9
    data = results_json(experiment)
    assert len(data["arms"]) == 3 and len(data["items"]) == 9
    pool_arm = next(a for a in data["arms"] if a["kind"] == ArmKind.POOL)
    assert pool_arm["latency_p95_ms"] == 100.0 and round(pool_arm["accuracy_ci95"][0], 3) == 0.342


def test_it_votes_for_self_consistency(alice, workspace, dataset, pool):
    choice = ArmChoice(pool=pool, include_pool=False, include_solos=False,
                       self_consistency=True, samples=3)  # fmt: skip
    experiment = _create(alice, workspace, dataset, pool, choice=choice, concurrency=10)
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("item", "run"):
        finish(
            result.run, texts=["it is 5", f"= {result.item.expected}", f"{result.item.expected}"]
        )
    experiment_advance(experiment_id=experiment.pk)
    graded = experiment.results.filter(item__checker="number")
    assert all(r.correct for r in graded)
    assert {r.extracted for r in graded} == {"4", "6"}


def test_it_counts_a_failed_run_as_wrong(alice, workspace, dataset, pool):
    experiment = _create(alice, workspace, dataset, pool, concurrency=20)
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("run"):
        finish(result.run, status=RunStatus.FAILED)
        Run.objects.filter(pk=result.run_id).update(error="provider down")
    experiment_advance(experiment_id=experiment.pk)
    failed = experiment.results.filter(status=ItemStatus.FAILED)
    assert failed.count() == 9
    assert failed.filter(correct=False).count() == 6  # the human-graded item stays ungraded
    assert failed.first().detail == "provider down"


def test_it_stops_dispatching_at_the_budget_cap(alice, workspace, dataset, pool):
    experiment = _create(alice, workspace, dataset, pool, concurrency=1)
    per_item = experiment.results.first().estimated_cost
    experiment.budget_usd = per_item * 2  # room for about two runs, not nine
    experiment.save()
    experiment_advance(experiment_id=experiment.pk)
    first = experiment.results.get(status=ItemStatus.RUNNING)
    finish(first.run, fused="4", cost=str(per_item * 2))
    assert experiment_advance(experiment_id=experiment.pk) is False
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.STOPPED
    assert "budget cap" in experiment.note
    assert experiment.results.filter(status=ItemStatus.SKIPPED).count() == 8
    assert Run.objects.count() == 1


def test_it_pauses_resumes_and_cancels(alice, bob, workspace, dataset, pool):
    experiment = _create(alice, workspace, dataset, pool, concurrency=1)
    experiment_advance(experiment_id=experiment.pk)
    experiment_pause(experiment=experiment, user=bob)
    first = experiment.results.get(status=ItemStatus.RUNNING)
    finish(first.run, fused="4")
    assert experiment_advance(experiment_id=experiment.pk) is False  # paused: nothing new
    assert experiment.results.filter(status=ItemStatus.RUNNING).count() == 0
    assert experiment.results.get(pk=first.pk).status == ItemStatus.DONE
    with pytest.raises(ServiceError):
        experiment_pause(experiment=experiment, user=bob)
    experiment_resume(experiment=experiment, user=bob)
    experiment_advance(experiment_id=experiment.pk)
    running = experiment.results.get(status=ItemStatus.RUNNING)
    experiment_cancel(experiment=experiment, user=bob)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.CANCELLED
    running.run.refresh_from_db()
    assert running.run.status == RunStatus.CANCELLED
    assert experiment.results.filter(status=ItemStatus.SKIPPED).count() == 8
    assert experiment.results.filter(status=ItemStatus.DONE).count() == 1
