"""Writes about datasets and experiments, and the loop that drives an experiment.

``experiment_advance`` is the whole scheduler: under a row lock on the experiment it grades
item runs that have ended, then tops up in-flight runs to the concurrency limit, within the
budget cap. It is idempotent (an item's run is created and linked in one transaction, and an
item is graded once, when it moves from running to done), so it may be called as often as
anyone likes: after every tick (``tasks.experiment_advance`` reschedules itself while there is
work), from the beat every few seconds, and when an experiment starts or resumes.

Items graded by a judge (rubric) take a second run, the grading call, after their answer run:
they go running -> grading -> done. Human items wait, done but ungraded, for ``item_grade``.
"""

from __future__ import annotations

import contextlib
import logging
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.experiments import checkers
from workbench.experiments.arms import (
    ArmChoice,
    GraderChoice,
    experiment_estimate,
    token_matches,
)
from workbench.experiments.datasets import ItemInput, dataset_parse
from workbench.experiments.grading import grade_parse, grader_prompt
from workbench.experiments.models import (
    EXPERIMENT_ENDED,
    IN_FLIGHT,
    Arm,
    ArmKind,
    Dataset,
    DatasetItem,
    DatasetSource,
    Experiment,
    ExperimentStatus,
    ItemResult,
    ItemStatus,
)
from workbench.experiments.sample import SAMPLE_DESCRIPTION, SAMPLE_ITEMS, SAMPLE_NAME
from workbench.experiments.selectors import experiment_spend
from workbench.experiments.stats import majority
from workbench.lib.errors import ServiceError
from workbench.runs.models import CandidateStatus, ProviderCall, Run, RunSource, RunStatus

log = logging.getLogger(__name__)

MAX_CONCURRENCY = 32
TICK_S = 1.0


def _ensure_role(user: User, workspace: Workspace, minimum: str) -> None:
    membership = Membership.objects.filter(user=user, workspace=workspace).first()
    if membership is None or not membership.has_role(minimum):
        raise PermissionDenied(f"This needs the {minimum} role or higher.")


# --- datasets -----------------------------------------------------------------------------------


@transaction.atomic
def dataset_create(
    *,
    workspace: Workspace,
    user: User,
    name: str,
    items: list[ItemInput],
    source: str = DatasetSource.UPLOAD,
    filename: str = "",
    description: str = "",
) -> Dataset:
    """Store a dataset and all its items, or nothing."""
    _ensure_role(user, workspace, Role.MEMBER)
    name = (name or "").strip() or (filename.rsplit(".", 1)[0] if filename else "") or "Dataset"
    if not items:
        raise ServiceError("A dataset needs at least one item.", field="file")
    dataset = Dataset.objects.create(
        workspace=workspace,
        name=name[:120],
        description=description[:300],
        source=source,
        filename=filename[:200],
        item_count=len(items),
        created_by=user,
    )
    DatasetItem.objects.bulk_create(
        DatasetItem(
            dataset=dataset,
            position=i,
            prompt=item.prompt,
            expected=item.expected,
            checker=item.checker,
            checker_args=item.checker_args,
        )
        for i, item in enumerate(items)
    )
    return dataset


def dataset_import(
    *, workspace: Workspace, user: User, name: str, filename: str, data: bytes
) -> Dataset:
    """Parse and check the whole file first; store it in one transaction only if all is well.

    Raises ``DatasetFileError`` (every problem with its line) and stores nothing.
    """
    _ensure_role(user, workspace, Role.MEMBER)
    items = dataset_parse(filename, data)
    return dataset_create(workspace=workspace, user=user, name=name, items=items, filename=filename)


def dataset_install_sample(*, workspace: Workspace, user: User) -> Dataset:
    """The built-in sample dataset; installing it twice gives back the first copy."""
    existing = Dataset.objects.filter(
        workspace=workspace, source=DatasetSource.SAMPLE, name=SAMPLE_NAME
    ).first()
    if existing is not None:
        return existing
    return dataset_create(
        workspace=workspace,
        user=user,
        name=SAMPLE_NAME,
        description=SAMPLE_DESCRIPTION,
        items=list(SAMPLE_ITEMS),
        source=DatasetSource.SAMPLE,
    )


# Gold answers are free text: these checkers can grade against one (a number checker only
# when the gold answer is a number; the item is left out otherwise).
GOLD_CHECKERS = (
    checkers.CONTAINS,
    checkers.EXACT,
    checkers.NUMBER,
    checkers.JUDGE,
    checkers.HUMAN,
)


def gold_items(workspace: Workspace, checker: str) -> tuple[list[ItemInput], int]:
    """One item per run of the workspace that people gave a gold answer (the latest one
    written, if several did), and how many were left out because ``checker`` cannot use it."""
    from workbench.curation.models import Judgment

    judgments = (
        Judgment.objects.filter(run__workspace=workspace)
        .exclude(gold_answer="")
        .select_related("run")
        .order_by("run__created_at", "run_id", "-updated_at")
    )
    items: list[ItemInput] = []
    seen: set[object] = set()
    left_out = 0
    for judgment in judgments:
        if judgment.run_id in seen:
            continue
        seen.add(judgment.run_id)
        expected = judgment.gold_answer.strip()
        try:
            checkers.checker_validate(checker, expected, {})
        except checkers.CheckerError:
            left_out += 1
            continue
        items.append(ItemInput(judgment.run.prompt, expected, checker))
    return items, left_out


def dataset_from_gold(
    *, workspace: Workspace, user: User, name: str = "", checker: str = checkers.CONTAINS
) -> tuple[Dataset, int]:
    """A dataset of the prompts people gave gold answers to; returns it and how many gold
    answers the checker could not use."""
    _ensure_role(user, workspace, Role.MEMBER)
    if checker not in GOLD_CHECKERS:
        raise ServiceError(
            "Choose contains, exact, number, judge (rubric) or human.", field="checker"
        )
    items, left_out = gold_items(workspace, checker)
    if not items:
        raise ServiceError(
            "No curated run has a gold answer this checker can use yet. Give gold answers "
            "on run pages first.",
            code="no_gold",
        )
    dataset = dataset_create(
        workspace=workspace,
        user=user,
        name=name or f"Gold answers ({timezone.now():%Y-%m-%d})",
        items=items,
        source=DatasetSource.CURATED,
        description=f"{len(items)} prompts with people's gold answers, graded by {checker}.",
    )
    return dataset, left_out


@transaction.atomic
def dataset_delete(*, dataset: Dataset, user: User) -> None:
    _ensure_role(user, dataset.workspace, Role.MEMBER)
    if dataset.experiments.exists():
        raise ServiceError(
            "Experiments used this dataset; delete them first, or keep it.", code="in_use"
        )
    dataset.delete()


# --- experiments --------------------------------------------------------------------------------


def _clean_limits(concurrency: int, budget_usd: Decimal | None) -> None:
    if not 1 <= concurrency <= MAX_CONCURRENCY:
        raise ServiceError(
            f"Concurrency is 1 to {MAX_CONCURRENCY} runs at once.", field="concurrency"
        )
    if budget_usd is not None and budget_usd <= 0:
        raise ServiceError("A budget cap is more than $0, or left empty.", field="budget_usd")


@transaction.atomic
def experiment_create(
    *,
    workspace: Workspace,
    user: User,
    dataset: Dataset,
    choice: ArmChoice,
    estimate_token: str | None = None,
    grader: GraderChoice | None = None,
    name: str = "",
    concurrency: int = 4,
    budget_usd: Decimal | None = None,
) -> Experiment:
    """Freeze the arms, estimate the total, refuse it over the cap, and start dispatching.

    Pages and the API pass the ``estimate_token`` the person's estimate returned (an empty
    one when none came back): the experiment starts only on the estimate they saw, unchanged.
    ``None`` is for Python callers that want the estimate taken here (fixtures, the demo).
    """
    _ensure_role(user, workspace, Role.MEMBER)
    _clean_limits(concurrency, budget_usd)
    estimate = experiment_estimate(
        user=user, workspace=workspace, dataset=dataset, choice=choice, grader=grader
    )
    if estimate_token is not None and not token_matches(estimate, estimate_token):
        raise ServiceError(
            "Estimate the cost first: the experiment starts only on an estimate you have seen, "
            "and this one is missing or out of date (the arms, the dataset or prices changed)."
            if estimate_token
            else "Estimate the cost first: the experiment starts only on an estimate you have "
            "seen.",
            field="estimate",
            code="estimate_stale" if estimate_token else "estimate_required",
        )
    if budget_usd is not None and estimate.total > budget_usd:
        raise ServiceError(
            f"This experiment could cost up to ${estimate.total:.4f}, over the cap of "
            f"${budget_usd:.4f}. Raise the cap, choose fewer arms or a smaller dataset.",
            field="budget_usd",
            code="over_budget",
        )
    items = list(dataset.items.order_by("position"))
    experiment = Experiment.objects.create(
        workspace=workspace,
        dataset=dataset,
        name=(name or "").strip()[:120] or f"{dataset.name} × {len(estimate.arms)} arms",
        concurrency=concurrency,
        budget_usd=budget_usd,
        estimated_cost=estimate.total,
        estimate_unpriced=estimate.unpriced,
        created_by=user,
        runs_as=user,
        grader_config=estimate.grader_config,
        grader_label=estimate.grader_label[:200],
    )
    results = []
    for position, arm_estimate in enumerate(estimate.arms):
        plan = arm_estimate.plan
        arm = Arm.objects.create(
            experiment=experiment,
            position=position,
            kind=plan.kind,
            label=plan.label[:200],
            pool=plan.pool,
            config=plan.config,
            samples=plan.samples,
            estimated_cost=arm_estimate.total,
        )
        results += [
            ItemResult(
                experiment=experiment,
                arm=arm,
                item=item,
                estimated_cost=cost,
                grade_estimated_cost=grading,
            )
            for item, cost, grading in zip(
                items, arm_estimate.per_item, arm_estimate.grading, strict=True
            )
        ]
    ItemResult.objects.bulk_create(results)
    transaction.on_commit(lambda: schedule_advance(experiment.pk, countdown=0))
    return experiment


def _locked(experiment: Experiment) -> Experiment:
    return Experiment.objects.select_for_update().get(pk=experiment.pk)


def experiment_pause(*, experiment: Experiment, user: User) -> Experiment:
    """Dispatch nothing more; runs already going finish and are graded."""
    _ensure_role(user, experiment.workspace, Role.MEMBER)
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.status != ExperimentStatus.RUNNING:
            raise ServiceError("Only a running experiment can be paused.", code="not_running")
        locked.status = ExperimentStatus.PAUSED
        locked.save(update_fields=["status"])
    return locked


def _acting_problem(experiment: Experiment) -> str:
    """Why the item runs can no longer be made in ``runs_as``'s name ("" when they can)."""
    user = experiment.runs_as
    if user is None or not user.is_active:
        return "the person it runs as no longer has an account"
    membership = Membership.objects.filter(user=user, workspace_id=experiment.workspace_id).first()
    if membership is None:
        return f"{user.username}, in whose name its runs are made, has left the workspace"
    if not membership.has_role(Role.MEMBER):
        return (
            f"{user.username}, in whose name its runs are made, is now a "
            f"{membership.get_role_display().lower()} and may not start runs"
        )
    return ""


def _ensure_credentials_for(experiment: Experiment, user: User) -> None:
    """Runs continued in ``user``'s name may use only credentials ``user`` may use."""
    from workbench.keys.selectors import credentials_usable_by
    from workbench.runs.engine_bridge import credential_id, display_of, provider_refs

    usable = set(credentials_usable_by(user, experiment.workspace).values_list("pk", flat=True))
    configs = [arm.config for arm in experiment.arms.all()]
    configs += [experiment.grader_config] if experiment.grader_config else []
    for config in configs:
        for ref in sorted(provider_refs(config)):
            if credential_id(ref) not in usable:
                label = display_of(config).get(ref, {}).get("label", ref)
                raise ServiceError(
                    f"This experiment uses the credential {label}, which you cannot use (it "
                    "is someone else's personal credential, or it was deleted).",
                    code="credential_unusable",
                )


def experiment_resume(*, experiment: Experiment, user: User) -> Experiment:
    """Dispatch again. When the person it ran as may no longer run it, it continues in the
    name of whoever resumes it (if they may use its credentials)."""
    _ensure_role(user, experiment.workspace, Role.MEMBER)
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.status != ExperimentStatus.PAUSED:
            raise ServiceError("Only a paused experiment can be resumed.", code="not_paused")
        fields = ["status"]
        if _acting_problem(locked):
            _ensure_credentials_for(locked, user)
            locked.runs_as = user
            locked.note = f"Resumed by {user.username}; its runs are now made in their name."
            fields += ["runs_as", "note"]
        locked.status = ExperimentStatus.RUNNING
        locked.save(update_fields=fields)
        transaction.on_commit(lambda: schedule_advance(locked.pk, countdown=0))
    return locked


def experiment_cancel(*, experiment: Experiment, user: User) -> Experiment:
    """Skip what is left and cancel the runs in flight; graded items stay. What the cancelled
    runs spent stays counted (``selectors.experiment_spend``)."""
    from workbench.runs.services import run_cancel

    _ensure_role(user, experiment.workspace, Role.MEMBER)
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.has_ended:
            raise ServiceError("This experiment has already ended.", code="ended")
        in_flight = list(
            locked.results.filter(status__in=IN_FLIGHT).select_related("run", "grade_run")
        )
        locked.results.filter(status__in=[ItemStatus.PENDING, *IN_FLIGHT]).update(
            status=ItemStatus.SKIPPED, detail=f"cancelled by {user.username}"[:500]
        )
        locked.status = ExperimentStatus.CANCELLED
        locked.finished_at = timezone.now()
        locked.note = f"Cancelled by {user.username}."
        locked.save(update_fields=["status", "finished_at", "note"])
    for result in in_flight:
        for run in (result.run, result.grade_run):
            if run is not None and not run.is_terminal:
                # It may have ended meanwhile; that is as good as cancelled.
                with contextlib.suppress(ServiceError):
                    run_cancel(run=run, user=user)
    return locked


@transaction.atomic
def experiment_delete(*, experiment: Experiment, user: User) -> None:
    _ensure_role(user, experiment.workspace, Role.MEMBER)
    if not experiment.has_ended:
        raise ServiceError("Cancel the experiment before deleting it.", code="not_ended")
    experiment.delete()


@transaction.atomic
def item_grade(*, result: ItemResult, user: User, correct: bool, note: str = "") -> ItemResult:
    """A person's grade of an answer: human items, judge (rubric) items (a correction of the
    judge), and answers no checker could grade. Grading again replaces the grade."""
    locked = (
        # of=("self",): PostgreSQL cannot lock the nullable side of the joins.
        ItemResult.objects.select_for_update(of=("self",))
        .select_related("item", "experiment__workspace")
        .get(pk=result.pk)
    )
    _ensure_role(user, locked.experiment.workspace, Role.MEMBER)
    if locked.status != ItemStatus.DONE:
        raise ServiceError("Only answered items can be graded.", code="not_answered")
    if locked.item.checker not in checkers.GRADED_LATER and locked.correct is not None:
        raise ServiceError(
            f"The {locked.item.get_checker_display().lower()} checker graded this answer; "
            "people grade human and judge (rubric) items, and answers no checker could grade.",
            code="not_gradable",
        )
    locked.correct = correct
    locked.graded_by, locked.graded_at = user, timezone.now()
    locked.grade_note = (note or "").strip()[:500]
    locked.save(update_fields=["correct", "graded_by", "graded_at", "grade_note"])
    return locked


# --- grading ------------------------------------------------------------------------------------


def _final_candidates(run: Run) -> list[str]:
    """The texts of the members' last answers (a debate's last round), in member order."""
    done = list(run.candidates.filter(status=CandidateStatus.DONE).order_by("round", "position"))
    if not done:
        return []
    last = max(c.round for c in done)
    return [c.text for c in done if c.round == last]


def _vote(texts: list[str], item: DatasetItem) -> str:
    """The answer most samples agree on, by what the checker extracts from each."""
    keys = [checkers.extract(item.checker, t, item.expected, item.checker_args) for t in texts]
    winner = majority(keys)
    if winner is None:
        return texts[0]
    return texts[keys.index(winner)]


def answer_of(run: Run, arm: Arm, item: DatasetItem) -> str:
    """What the arm answered: the fused answer, one model's answer, or the majority's.

    A pool without a judge (best-of left to people) has no fused answer; its members' answers
    are put to a vote, as self-consistency does.
    """
    if arm.kind != ArmKind.SELF_CONSISTENCY and run.fused_text.strip():
        return run.fused_text
    texts = _final_candidates(run)
    if not texts:
        return ""
    return _vote(texts, item) if len(texts) > 1 else texts[0]


def _unanswered(item: DatasetItem) -> bool | None:
    # A failure counts as a wrong answer, so an arm that fails often is not flattered; an item
    # only people (or a judge) can grade stays ungraded.
    return None if item.checker in checkers.GRADED_LATER else False


def _grade_dispatch(result: ItemResult, experiment: Experiment, refused: str) -> None:
    """Ask the grader about ``result``'s answer, as a run of its own (``refused``: why the
    runs may not be made now, "" when they may)."""
    from workbench.runs.services import run_create

    item = result.item
    why = refused or ("" if experiment.grader_config else "the experiment has no grader model")
    if not why:
        try:
            result.grade_run = run_create(
                workspace=experiment.workspace,
                user=experiment.runs_as,
                config=experiment.grader_config,  # type: ignore[arg-type]
                prompt=grader_prompt(
                    question=item.prompt,
                    expected=item.expected,
                    rubric=str(item.checker_args.get("rubric", "")),
                    answer=result.answer,
                ),
                source=RunSource.EXPERIMENT,
                estimated_cost=result.grade_estimated_cost,
            )
        except ServiceError as exc:
            why = exc.message
    if why:
        result.status, result.correct = ItemStatus.DONE, None
        result.detail = f"The judge was not asked ({why}); grade it by hand."[:500]
        result.finished_at = timezone.now()
    else:
        result.status = ItemStatus.GRADING
    result.save()


def _failure(run: Run) -> str:
    """Why a run gave no answer: its error, and what its first failed member said (the run's
    own error is often only "every member failed"). Both were redacted when stored."""
    why = run.error or f"the run ended {run.status} without an answer"
    member = (
        run.candidates.filter(status=CandidateStatus.FAILED).exclude(error="").order_by("position")
    ).first()
    return f"{why} ({member.model}: {member.error})" if member is not None else why


def _settle(result: ItemResult, experiment: Experiment, refused: str) -> None:
    """Grade an item whose run has ended (the caller holds the experiment's lock)."""
    run, item = result.run, result.item
    result.finished_at = timezone.now()
    if run is None:
        result.status, result.correct, result.detail = (
            ItemStatus.FAILED, _unanswered(item), "run deleted"
        )  # fmt: skip
        result.save()
        return
    result.cost = run.total_cost
    result.latency_ms = run.wall_ms
    answer = "" if run.status in (RunStatus.FAILED, RunStatus.CANCELLED) else (
        answer_of(run, result.arm, item)
    )  # fmt: skip
    if not answer.strip():
        result.status, result.correct = ItemStatus.FAILED, _unanswered(item)
        result.detail = _failure(run)[:500]
        result.save()
        return
    result.answer = answer
    try:
        grade = checkers.grade(item.checker, answer, item.expected, item.checker_args)
    except checkers.CheckerError as exc:
        result.status, result.correct, result.detail = ItemStatus.DONE, None, str(exc)[:500]
    else:
        result.status, result.correct = ItemStatus.DONE, grade.correct
        result.extracted, result.detail = grade.extracted[:500], grade.detail[:500]
        if item.checker == checkers.JUDGE:
            _grade_dispatch(result, experiment, refused)
            return
    result.save()


def _settle_grade(result: ItemResult) -> None:
    """Read the grader's verdict on an answer whose grading run has ended."""
    run = result.grade_run
    result.status, result.finished_at = ItemStatus.DONE, timezone.now()
    grade = None
    if run is not None:
        result.grade_cost = run.total_cost
        if run.status not in (RunStatus.FAILED, RunStatus.CANCELLED):
            texts = [run.fused_text] if run.fused_text.strip() else _final_candidates(run)
            grade = grade_parse(texts[0]) if texts else None
    if grade is None:
        if run is None:
            why = "the grading run was deleted"
        elif run.status in (RunStatus.FAILED, RunStatus.CANCELLED):
            why = run.error or f"the grading run ended {run.status}"
        else:
            why = "its reply held no grade"
        result.correct = None
        result.detail = f"The judge gave no usable grade ({why}); grade it by hand."[:500]
    else:
        result.correct, result.detail = grade.correct, grade.detail
    result.save()


# --- the scheduler ------------------------------------------------------------------------------


def _recorded_spend(run_ids: list[Any]) -> dict[Any, Decimal]:
    rows = (
        ProviderCall.objects.filter(run_id__in=run_ids, cost__isnull=False)
        .values("run_id")
        .annotate(total=Sum("cost"))
    )
    return {row["run_id"]: row["total"] for row in rows}


def _left_to_spend(result: ItemResult, spent_by_run: dict[Any, Decimal]) -> Decimal:
    grading = result.grade_estimated_cost - spent_by_run.get(result.grade_run_id, Decimal(0))
    if result.status == ItemStatus.GRADING:
        return max(Decimal(0), grading)
    answer = result.estimated_cost - spent_by_run.get(result.run_id, Decimal(0))
    return max(Decimal(0), answer) + max(Decimal(0), grading)


def experiment_advance(*, experiment_id: int) -> bool:
    """Grade ended item runs, then dispatch pending items up to the limit and the cap.

    Returns whether there is still work in flight or to dispatch (the caller ticks again).
    """
    from workbench.runs.services import run_create, runs_redispatch_lost

    with transaction.atomic():
        experiment = (
            # of=("self",): PostgreSQL cannot lock the nullable side of an outer join.
            Experiment.objects.select_for_update(of=("self",))
            .select_related("workspace", "runs_as")
            .filter(pk=experiment_id)
            .first()
        )
        if experiment is None or experiment.status in EXPERIMENT_ENDED:
            return False
        refused = _acting_problem(experiment)
        if refused and experiment.status == ExperimentStatus.RUNNING:
            # Never make runs in the name of someone who may no longer make them.
            experiment.status = ExperimentStatus.PAUSED
            experiment.note = (
                f"Paused: {refused}. A member can resume it to continue in their own name."
            )[:300]
            experiment.save(update_fields=["status", "note"])
        in_flight = list(
            experiment.results.filter(status__in=IN_FLIGHT).select_related(
                "run", "grade_run", "item", "arm"
            )
        )
        still_running = 0
        waiting: list[Any] = []
        for result in in_flight:
            run = result.run if result.status == ItemStatus.RUNNING else result.grade_run
            if run is not None and not run.is_terminal:
                waiting.append(run.pk)
                still_running += 1
            elif result.status == ItemStatus.RUNNING:
                _settle(result, experiment, refused)
                still_running += result.status == ItemStatus.GRADING
            else:
                _settle_grade(result)
        # A run whose task was lost (a process died between its commit and the publish)
        # would keep the experiment waiting forever; the reaper would find it too, later.
        runs_redispatch_lost(run_ids=waiting)
        if experiment.status == ExperimentStatus.RUNNING:
            flying = [r for r in in_flight if r.status in IN_FLIGHT]
            spent_by_run = _recorded_spend(
                [x for r in flying for x in (r.run_id, r.grade_run_id) if x is not None]
            )
            # What in-flight items may still spend: their reservation less what they spent
            # (an item being graded has only its grading call left).
            reserved = sum((_left_to_spend(r, spent_by_run) for r in flying), Decimal(0))
            spent = experiment_spend(experiment)
            cap = experiment.budget_usd
            pending = experiment.results.filter(status=ItemStatus.PENDING).select_related(
                "item", "arm", "arm__pool"
            )
            slots = max(0, experiment.concurrency - still_running)
            over_cap = cap is not None and spent >= cap
            for result in pending[:slots] if not over_cap else []:
                need = result.estimated_cost + result.grade_estimated_cost
                if cap is not None and spent + reserved + need > cap:
                    over_cap = True
                    break
                try:
                    run = run_create(
                        workspace=experiment.workspace,
                        user=experiment.runs_as,
                        config=result.arm.config,
                        prompt=result.item.prompt,
                        pool=result.arm.pool,
                        source=RunSource.EXPERIMENT,
                        estimated_cost=result.estimated_cost,
                    )
                except ServiceError as exc:
                    result.status, result.detail = ItemStatus.FAILED, exc.message[:500]
                    result.correct = _unanswered(result.item)
                    result.finished_at = timezone.now()
                    result.save()
                    continue
                result.run, result.status = run, ItemStatus.RUNNING
                result.dispatched_at = timezone.now()
                result.save(update_fields=["run", "status", "dispatched_at"])
                reserved += need
                still_running += 1
            if over_cap and still_running == 0:
                experiment.results.filter(status=ItemStatus.PENDING).update(
                    status=ItemStatus.SKIPPED, detail="budget cap reached"
                )
                experiment.status = ExperimentStatus.STOPPED
                experiment.note = (
                    f"Stopped at the budget cap of ${cap:.4f}: ${spent:.4f} spent; "
                    "the items left were skipped."
                )
                experiment.finished_at = timezone.now()
                experiment.save(update_fields=["status", "note", "finished_at"])
                return False
        left = experiment.results.filter(status__in=[ItemStatus.PENDING, *IN_FLIGHT]).exists()
        if not left:
            experiment.status = ExperimentStatus.FINISHED
            experiment.finished_at = timezone.now()
            experiment.save(update_fields=["status", "finished_at"])
            return False
        return experiment.status == ExperimentStatus.RUNNING or still_running > 0


def _has_work(experiment_id: int) -> bool:
    """Whether a tick of this experiment would do anything."""
    experiment = Experiment.objects.filter(pk=experiment_id).only("status").first()
    if experiment is None or experiment.has_ended:
        return False
    if experiment.status == ExperimentStatus.RUNNING:
        return True
    return experiment.results.filter(status__in=IN_FLIGHT).exists()


def experiments_advance_all() -> int:
    """Advance every experiment that has work, and restart its ticks: the beat's safety net
    for a tick chain that was lost (a tick the dead worker held until its visibility timeout,
    a broker that was down when one was queued)."""
    ids = list(
        Experiment.objects.filter(
            status__in=[ExperimentStatus.RUNNING, ExperimentStatus.PAUSED]
        ).values_list("pk", flat=True)
    )
    for experiment_id in ids:
        try:
            if experiment_advance(experiment_id=experiment_id):
                schedule_advance(experiment_id)
        except Exception:  # one broken experiment must not stop the others
            log.exception("advancing experiment %s failed", experiment_id)
    return len(ids)


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def tick_key(experiment_id: int) -> str:
    # Named after the database too: test databases (and instances sharing one Redis) reuse ids.
    return f"fw:experiment:{connection.settings_dict['NAME']}:{experiment_id}:tick"


def schedule_advance(experiment_id: int, *, countdown: float = TICK_S) -> None:
    """Queue one tick unless one is already queued: the key keeps ticks from multiplying."""
    from workbench.experiments.tasks import experiment_advance as task

    if settings.CELERY_TASK_ALWAYS_EAGER:
        # An eager tick that schedules the next one would recurse forever; the beat drives.
        if countdown == 0:
            task.delay(experiment_id)
        return
    key = tick_key(experiment_id)
    client = _redis()
    try:
        if not client.set(key, "1", nx=True, ex=int(countdown) + 30):
            return
    except redis.RedisError:
        log.warning("could not reach Redis to schedule experiment %s", experiment_id)
    try:
        task.apply_async((experiment_id,), countdown=countdown)
    except Exception:  # the broker is down: the beat's advance_all picks the experiment up
        log.exception("could not queue a tick of experiment %s", experiment_id)
        # A key left behind with no tick queued would block every tick for 30 s.
        with contextlib.suppress(redis.RedisError):
            client.delete(key)


def experiment_tick(*, experiment_id: int) -> None:
    """One tick of the loop: queue the next tick, then advance.

    The next tick is queued *before* advancing, while this task is still unacknowledged: a
    worker killed in the middle (or right after a commit, before anything after it ran)
    leaves both this tick, redelivered, and the next one. The chain thus never depends on a
    beat; the last tick of an experiment finds nothing to do and queues no other.
    """
    with contextlib.suppress(redis.RedisError):
        _redis().delete(tick_key(experiment_id))
    eager = settings.CELERY_TASK_ALWAYS_EAGER
    if not eager and _has_work(experiment_id):
        schedule_advance(experiment_id)
    experiment_advance(experiment_id=experiment_id)
