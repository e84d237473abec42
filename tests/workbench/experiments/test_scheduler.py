"""The scheduler beyond the happy path: judge (rubric) grading runs, people's grades, spend
that counts runs in flight and cancelled, a creator who left, and item runs whose task was
lost. In-process: runs are finished by hand (``conftest.finish``)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from tests.workbench.experiments.conftest import finish
from workbench.accounts.models import Membership, Role
from workbench.accounts.services import membership_change_role, membership_leave
from workbench.experiments.arms import ArmChoice, GraderChoice
from workbench.experiments.datasets import ItemInput
from workbench.experiments.models import ExperimentStatus, ItemStatus
from workbench.experiments.results import experiment_results, results_csv
from workbench.experiments.selectors import experiment_progress
from workbench.experiments.services import (
    dataset_create,
    experiment_advance,
    experiment_cancel,
    experiment_create,
    experiment_resume,
    item_grade,
)
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.errors import ServiceError
from workbench.runs.models import CallStatus, ProviderCall, Run, RunSource, RunStatus


def _pool_only(pool) -> ArmChoice:
    """One arm: the pool in its own mode."""
    return ArmChoice(pool=pool, include_solos=False)


def _call(run: Run, cost: str, call_id: str = "c1") -> None:
    ProviderCall.objects.create(
        run=run, call_id=call_id, candidate="m1", provider="sim", model="sim-fast",
        status=CallStatus.OK, cost=Decimal(cost), latency_ms=10,
    )  # fmt: skip


@pytest.fixture
def judged(alice, workspace):
    return dataset_create(
        workspace=workspace,
        user=alice,
        name="explain",
        items=[
            ItemInput("Why is the sky blue?", "Rayleigh scattering", "judge",
                      {"rubric": "Names scattering."}),
            ItemInput("Write a haiku.", "", "human"),
        ],
    )  # fmt: skip


def test_it_grades_judge_items_with_a_grading_run_of_their_own(alice, workspace, judged, pool):
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=judged, choice=_pool_only(pool), concurrency=4
    )
    # The grader defaults to the pool's judge, and its worst case is in the estimate.
    assert experiment.grader_label == pool.judge_model
    judge_item = experiment.results.get(item__checker="judge")
    assert judge_item.grade_estimated_cost > 0
    assert experiment.results.get(item__checker="human").grade_estimated_cost == 0
    assert experiment.estimated_cost == sum(
        r.estimated_cost + r.grade_estimated_cost for r in experiment.results.all()
    )
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("run"):
        finish(result.run, fused="Air scatters blue light more.", cost="0.01")
    assert experiment_advance(experiment_id=experiment.pk) is True  # the grading is in flight
    judge_item.refresh_from_db()
    assert judge_item.status == ItemStatus.GRADING
    grade_run = judge_item.grade_run
    assert grade_run.source == RunSource.EXPERIMENT
    assert grade_run.config["spec"]["members"][0]["model"] == pool.judge_model
    assert "Air scatters blue light more." in grade_run.prompt
    assert "<rubric>\nNames scattering.\n</rubric>" in grade_run.prompt
    assert experiment_progress(experiment).grading == 1
    finish(grade_run, texts=['{"correct": true, "scores": {"A": 9}, "rationale": "Names it."}'],
           cost="0.002")  # fmt: skip
    assert experiment_advance(experiment_id=experiment.pk) is False
    judge_item.refresh_from_db()
    assert (judge_item.status, judge_item.correct) == (ItemStatus.DONE, True)
    assert judge_item.grade_cost == Decimal("0.002") and judge_item.cost == Decimal("0.01")
    assert "judge (rubric): score 9/10" in judge_item.detail
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED
    # The grading call is spent like any other; the arm's cost per item is its answers'.
    assert experiment_progress(experiment).spent == Decimal("0.022")
    summary = experiment_results(experiment).arms[0]
    assert summary.cost_per_item == Decimal("0.01")


def _judged_by(alice, workspace, judged, pool, *, answer: str, reply: str):
    """Answer every item with ``answer``; the grader replies ``reply`` to the judge item."""
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=judged, choice=_pool_only(pool), concurrency=4
    )
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("run"):
        finish(result.run, fused=answer)
    experiment_advance(experiment_id=experiment.pk)
    judge_item = experiment.results.get(item__checker="judge")
    finish(judge_item.grade_run, texts=[reply])
    experiment_advance(experiment_id=experiment.pk)
    judge_item.refresh_from_db()
    return experiment, judge_item


def test_it_names_the_grader_when_it_cannot_run(charlie, alice, workspace, judged, pool):
    theirs = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="mine", scope=Scope.PERSONAL
    )
    Membership.objects.create(workspace=workspace, user=charlie, role=Role.MEMBER)
    choice = ArmChoice(pool=pool, include_solos=False)
    with pytest.raises(ServiceError) as caught:
        experiment_create(
            workspace=workspace, user=charlie, dataset=judged, choice=choice,
            grader=GraderChoice(theirs.pk, "sim-judge"),
        )  # fmt: skip
    assert caught.value.field == "grader"
    assert caught.value.message.startswith("The grader: That is another member's personal")


def test_it_leaves_an_ungradable_judge_reply_to_people(alice, workspace, judged, pool):
    experiment, judge_item = _judged_by(
        alice, workspace, judged, pool, answer="Because.", reply="I would rather not say."
    )
    assert judge_item.status == ItemStatus.DONE and judge_item.correct is None
    assert "no usable grade" in judge_item.detail
    assert experiment_progress(experiment).awaiting == 2  # it and the haiku


def test_it_counts_only_graded_items_until_people_grade(alice, bob, vera, workspace, judged, pool):
    experiment, judged_item = _judged_by(
        alice, workspace, judged, pool, answer="Scattering, and a haiku.",
        reply='{"correct": false, "scores": {"A": 2}}',
    )  # fmt: skip
    summary = experiment_results(experiment).arms[0]
    assert (summary.graded, summary.correct, summary.ungraded) == (1, 0, 1)
    assert summary.accuracy == 0.0
    haiku = experiment.results.get(item__checker="human")
    with pytest.raises(PermissionDenied):  # viewers read, members grade
        item_grade(result=haiku, user=vera, correct=True)
    item_grade(result=haiku, user=bob, correct=True, note="  scans well ")
    haiku.refresh_from_db()
    assert (haiku.correct, haiku.graded_by, haiku.grade_note) == (True, bob, "scans well")
    row = next(r for r in csv.DictReader(io.StringIO(results_csv(experiment))) if r["grade_note"])
    assert (row["correct"], row["graded_by"], row["grade_note"]) == ("True", "bob", "scans well")
    summary = experiment_results(experiment).arms[0]
    assert (summary.graded, summary.correct, summary.ungraded) == (2, 1, 0)
    assert experiment_progress(experiment).awaiting == 0
    # A person may correct the judge; a rule-checked answer is not theirs to overrule.
    item_grade(result=judged_item, user=bob, correct=True)
    assert experiment_results(experiment).arms[0].correct == 2


def test_it_refuses_grades_for_unanswered_and_rule_checked_items(
    alice, bob, workspace, dataset, pool
):
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=_pool_only(pool), concurrency=4
    )
    pending = experiment.results.first()
    with pytest.raises(ServiceError, match="Only answered"):
        item_grade(result=pending, user=bob, correct=True)
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("run"):
        finish(result.run, fused="4")
    experiment_advance(experiment_id=experiment.pk)
    numbered = experiment.results.get(item__position=0)
    with pytest.raises(ServiceError, match="checker graded this answer") as caught:
        item_grade(result=numbered, user=bob, correct=False)
    assert caught.value.code == "not_gradable"


def test_it_counts_the_spend_of_runs_in_flight_and_of_cancelled_runs(
    alice, bob, workspace, dataset, pool
):
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=_pool_only(pool), concurrency=2
    )
    experiment_advance(experiment_id=experiment.pk)
    first, second = experiment.results.filter(status=ItemStatus.RUNNING).select_related("run")
    _call(first.run, "0.003")  # a member finished; the run goes on
    assert experiment_progress(experiment).spent == Decimal("0.003")
    finish(second.run, fused="6", cost="0.005")
    _call(second.run, "0.005")
    experiment_advance(experiment_id=experiment.pk)  # settles the second, dispatches the third
    assert experiment_progress(experiment).spent == Decimal("0.008")
    third = experiment.results.get(status=ItemStatus.RUNNING, pk__gt=second.pk)
    _call(third.run, "0.0001")
    experiment_cancel(experiment=experiment, user=bob)
    # The cancelled runs' calls were paid for: they stay in the spend.
    assert experiment_progress(experiment).spent == Decimal("0.0081")
    _call(first.run, "0.001", call_id="c2")  # recorded as the cancel lands
    assert experiment_progress(experiment).spent == Decimal("0.0091")


def test_it_reserves_only_what_runs_in_flight_may_still_spend(alice, workspace, dataset, pool):
    """A run in flight holds its estimate less what it has spent: its spend is not counted
    twice against the cap (once spent, once reserved)."""
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=_pool_only(pool), concurrency=2
    )
    per_item = experiment.results.first().estimated_cost
    experiment.budget_usd = per_item * Decimal("3.2")
    experiment.save()
    experiment_advance(experiment_id=experiment.pk)
    first, second = experiment.results.filter(status=ItemStatus.RUNNING).select_related("run")
    finish(second.run, fused="6", cost=str(per_item))
    _call(second.run, str(per_item))
    _call(first.run, str(per_item / 2))  # half its worst case spent, half still reserved
    experiment_advance(experiment_id=experiment.pk)
    # 1 settled + 0.5 spent + 0.5 reserved + 1 for the next = 3 <= 3.2: the third goes.
    assert experiment.results.filter(status=ItemStatus.RUNNING).count() == 2
    assert experiment_progress(experiment).spent == per_item * Decimal("1.5")


def test_it_pauses_when_its_creator_leaves_the_workspace(
    alice, bob, make_user, workspace, dataset, pool
):
    experiment = experiment_create(
        workspace=workspace, user=bob, dataset=dataset, choice=_pool_only(pool), concurrency=1
    )
    experiment_advance(experiment_id=experiment.pk)
    first = experiment.results.get(status=ItemStatus.RUNNING)
    assert first.run.created_by == bob
    membership_leave(workspace=workspace, user=bob)
    finish(first.run, fused="4")
    assert experiment_advance(experiment_id=experiment.pk) is False
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.PAUSED
    assert "bob, in whose name its runs are made, has left the workspace" in experiment.note
    first.refresh_from_db()
    assert first.status == ItemStatus.DONE  # what was in flight is still graded
    assert Run.objects.count() == 1  # and nothing more is made in bob's name
    # A member resumes it: it goes on in their name.
    carol = make_user("carol", workspace=workspace)
    experiment_resume(experiment=experiment, user=carol)
    experiment_advance(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING and experiment.runs_as == carol
    assert "Resumed by carol" in experiment.note
    assert experiment.results.get(status=ItemStatus.RUNNING).run.created_by == carol


def test_it_pauses_when_its_creator_becomes_a_viewer(alice, bob, workspace, dataset, pool):
    experiment = experiment_create(
        workspace=workspace, user=bob, dataset=dataset, choice=_pool_only(pool), concurrency=1
    )
    membership = Membership.objects.get(user=bob, workspace=workspace)
    membership_change_role(membership=membership, actor=alice, role=Role.VIEWER)
    experiment_advance(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.PAUSED and "is now a viewer" in experiment.note
    assert Run.objects.count() == 0


def test_it_hands_a_lost_item_run_to_a_worker_again(
    alice, workspace, dataset, pool, settings, monkeypatch
):
    """A run committed but whose task never reached the broker (the process died between
    the two) is sent again once it has waited long enough, and only once."""
    from workbench.runs import tasks

    settings.FUSION_REDISPATCH_AFTER_S = 5
    sent: list[str] = []
    monkeypatch.setattr(tasks.run_execute, "delay", lambda run_id: sent.append(run_id))
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=_pool_only(pool), concurrency=1
    )
    # The test's transaction never commits, so the run's own publish never happens: lost.
    experiment_advance(experiment_id=experiment.pk)
    result = experiment.results.get(status=ItemStatus.RUNNING)
    experiment_advance(experiment_id=experiment.pk)
    assert sent == []  # queued for a moment: its publish may simply be on its way
    Run.objects.filter(pk=result.run_id).update(created_at=timezone.now() - timedelta(seconds=6))
    experiment_advance(experiment_id=experiment.pk)
    experiment_advance(experiment_id=experiment.pk)
    assert sent == [str(result.run_id)]  # once: the broker has it now
    # A run a worker has claimed is never sent again.
    Run.objects.filter(pk=result.run_id).update(
        status=RunStatus.RUNNING, attempts=1, dispatched_at=None
    )
    experiment_advance(experiment_id=experiment.pk)
    assert sent == [str(result.run_id)]
