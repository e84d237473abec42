"""Writes about datasets and experiments, and the loop that drives an experiment.

``experiment_advance`` is the whole scheduler: under a row lock on the experiment it grades
item runs that have ended, then tops up in-flight runs to the concurrency limit, within the
budget cap. It is idempotent (an item's run is created and linked in one transaction, and an
item is graded once, when it moves from running to done), so it may be called as often as
anyone likes: after every tick (``tasks.experiment_advance`` reschedules itself while there is
work), from the beat every few seconds, and when an experiment starts or resumes.
"""

from __future__ import annotations

import contextlib
import logging
from decimal import Decimal

import redis
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Sum
from django.utils import timezone

from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.experiments import checkers
from workbench.experiments.arms import ArmChoice, arms_estimate, arms_plan
from workbench.experiments.datasets import ItemInput, dataset_parse
from workbench.experiments.models import (
    EXPERIMENT_ENDED,
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
from workbench.experiments.stats import majority
from workbench.lib.errors import ServiceError
from workbench.runs.models import CandidateStatus, Run, RunSource, RunStatus

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
GOLD_CHECKERS = (checkers.CONTAINS, checkers.EXACT, checkers.NUMBER, checkers.HUMAN)


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
        raise ServiceError("Choose contains, exact, number or human.", field="checker")
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
    name: str = "",
    concurrency: int = 4,
    budget_usd: Decimal | None = None,
) -> Experiment:
    """Freeze the arms, estimate the total, refuse it over the cap, and start dispatching."""
    _ensure_role(user, workspace, Role.MEMBER)
    pools = [choice.pool] + ([choice.base_pool] if choice.base_pool is not None else [])
    if dataset.workspace_id != workspace.pk or any(p.workspace_id != workspace.pk for p in pools):
        raise ServiceError("The dataset and the pool must belong to this workspace.")
    _clean_limits(concurrency, budget_usd)
    plans = arms_plan(user=user, workspace=workspace, choice=choice)
    items = list(dataset.items.order_by("position"))
    if not items:
        raise ServiceError("The dataset has no items.", field="dataset")
    estimate = arms_estimate(plans, [item.prompt for item in items])
    if budget_usd is not None and estimate.total > budget_usd:
        raise ServiceError(
            f"This experiment could cost up to ${estimate.total:.4f}, over the cap of "
            f"${budget_usd:.4f}. Raise the cap, choose fewer arms or a smaller dataset.",
            field="budget_usd",
            code="over_budget",
        )
    experiment = Experiment.objects.create(
        workspace=workspace,
        dataset=dataset,
        name=(name or "").strip()[:120] or f"{dataset.name} × {len(plans)} arms",
        concurrency=concurrency,
        budget_usd=budget_usd,
        estimated_cost=estimate.total,
        estimate_unpriced=estimate.unpriced,
        created_by=user,
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
            ItemResult(experiment=experiment, arm=arm, item=item, estimated_cost=cost)
            for item, cost in zip(items, arm_estimate.per_item, strict=True)
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


def experiment_resume(*, experiment: Experiment, user: User) -> Experiment:
    _ensure_role(user, experiment.workspace, Role.MEMBER)
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.status != ExperimentStatus.PAUSED:
            raise ServiceError("Only a paused experiment can be resumed.", code="not_paused")
        locked.status = ExperimentStatus.RUNNING
        locked.save(update_fields=["status"])
        transaction.on_commit(lambda: schedule_advance(locked.pk, countdown=0))
    return locked


def experiment_cancel(*, experiment: Experiment, user: User) -> Experiment:
    """Skip what is left and cancel the runs in flight; graded items stay."""
    from workbench.runs.services import run_cancel

    _ensure_role(user, experiment.workspace, Role.MEMBER)
    with transaction.atomic():
        locked = _locked(experiment)
        if locked.has_ended:
            raise ServiceError("This experiment has already ended.", code="ended")
        in_flight = list(locked.results.filter(status=ItemStatus.RUNNING).select_related("run"))
        locked.results.filter(status__in=[ItemStatus.PENDING, ItemStatus.RUNNING]).update(
            status=ItemStatus.SKIPPED, detail=f"cancelled by {user.username}"[:500]
        )
        locked.status = ExperimentStatus.CANCELLED
        locked.finished_at = timezone.now()
        locked.note = f"Cancelled by {user.username}."
        locked.save(update_fields=["status", "finished_at", "note"])
    for result in in_flight:
        if result.run is not None and not result.run.is_terminal:
            # It may have ended meanwhile; that is as good as cancelled.
            with contextlib.suppress(ServiceError):
                run_cancel(run=result.run, user=user)
    return locked


@transaction.atomic
def experiment_delete(*, experiment: Experiment, user: User) -> None:
    _ensure_role(user, experiment.workspace, Role.MEMBER)
    if not experiment.has_ended:
        raise ServiceError("Cancel the experiment before deleting it.", code="not_ended")
    experiment.delete()


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


def _settle(result: ItemResult) -> None:
    """Grade an item whose run has ended (the caller holds the experiment's lock)."""
    run, item = result.run, result.item
    now = timezone.now()
    result.finished_at = now
    # A failure counts as a wrong answer, so an arm that fails often is not flattered.
    unanswered = None if item.checker == checkers.HUMAN else False
    if run is None:
        result.status, result.correct, result.detail = ItemStatus.FAILED, unanswered, "run deleted"
        result.save()
        return
    result.cost = run.total_cost
    result.latency_ms = run.wall_ms
    answer = "" if run.status in (RunStatus.FAILED, RunStatus.CANCELLED) else (
        answer_of(run, result.arm, item)
    )  # fmt: skip
    if not answer.strip():
        result.status, result.correct = ItemStatus.FAILED, unanswered
        result.detail = (run.error or f"the run ended {run.status} without an answer")[:500]
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
    result.save()


# --- the scheduler ------------------------------------------------------------------------------


def _spent(experiment: Experiment) -> Decimal:
    total = experiment.results.filter(cost__isnull=False).aggregate(s=Sum("cost"))["s"]
    return total or Decimal(0)


def experiment_advance(*, experiment_id: int) -> bool:
    """Grade ended item runs, then dispatch pending items up to the limit and the cap.

    Returns whether there is still work in flight or to dispatch (the caller ticks again).
    """
    from workbench.runs.services import run_create

    with transaction.atomic():
        experiment = Experiment.objects.select_for_update().filter(pk=experiment_id).first()
        if experiment is None:
            return False
        in_flight = list(
            experiment.results.filter(status=ItemStatus.RUNNING).select_related(
                "run", "item", "arm"
            )
        )
        still_running = 0
        for result in in_flight:
            if result.run is None or result.run.is_terminal:
                _settle(result)
            else:
                still_running += 1
        if experiment.status in EXPERIMENT_ENDED:
            return False
        spent = _spent(experiment)
        if experiment.status == ExperimentStatus.RUNNING:
            reserved = sum(
                (r.estimated_cost for r in in_flight if r.status == ItemStatus.RUNNING),
                Decimal(0),
            )
            cap = experiment.budget_usd
            pending = experiment.results.filter(status=ItemStatus.PENDING).select_related(
                "item", "arm", "arm__pool"
            )
            slots = max(0, experiment.concurrency - still_running)
            over_cap = cap is not None and spent >= cap
            for result in pending[:slots] if not over_cap else []:
                if cap is not None and spent + reserved + result.estimated_cost > cap:
                    over_cap = True
                    break
                try:
                    run = run_create(
                        workspace=experiment.workspace,
                        user=experiment.created_by,
                        config=result.arm.config,
                        prompt=result.item.prompt,
                        pool=result.arm.pool,
                        source=RunSource.EXPERIMENT,
                        estimated_cost=result.estimated_cost,
                    )
                except ServiceError as exc:
                    result.status, result.detail = ItemStatus.FAILED, exc.message[:500]
                    result.correct = None if result.item.checker == checkers.HUMAN else False
                    result.finished_at = timezone.now()
                    result.save()
                    continue
                result.run, result.status = run, ItemStatus.RUNNING
                result.dispatched_at = timezone.now()
                result.save(update_fields=["run", "status", "dispatched_at"])
                reserved += result.estimated_cost
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
        left = experiment.results.filter(
            status__in=[ItemStatus.PENDING, ItemStatus.RUNNING]
        ).exists()
        if not left:
            experiment.status = ExperimentStatus.FINISHED
            experiment.finished_at = timezone.now()
            experiment.save(update_fields=["status", "finished_at"])
            return False
        return experiment.status == ExperimentStatus.RUNNING or still_running > 0


def experiments_advance_all() -> int:
    """Advance every experiment that has work: the beat's safety net if a tick was lost."""
    ids = list(
        Experiment.objects.filter(
            status__in=[ExperimentStatus.RUNNING, ExperimentStatus.PAUSED]
        ).values_list("pk", flat=True)
    )
    for experiment_id in ids:
        try:
            experiment_advance(experiment_id=experiment_id)
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
    try:
        if not _redis().set(tick_key(experiment_id), "1", nx=True, ex=int(countdown) + 30):
            return
    except redis.RedisError:
        log.warning("could not reach Redis to schedule experiment %s", experiment_id)
    try:
        task.apply_async((experiment_id,), countdown=countdown)
    except Exception:  # the broker is down: the beat's advance_all picks the experiment up
        log.exception("could not queue a tick of experiment %s", experiment_id)


def experiment_tick(*, experiment_id: int) -> None:
    """One tick of the loop: advance, and queue the next tick while there is work."""
    with contextlib.suppress(redis.RedisError):
        _redis().delete(tick_key(experiment_id))
    if experiment_advance(experiment_id=experiment_id) and not settings.CELERY_TASK_ALWAYS_EAGER:
        schedule_advance(experiment_id)
