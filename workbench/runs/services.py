"""Writes about runs: create, cancel, rerun, reap. Execution itself is in ``execution``; every
status change goes through ``states`` (conditional on where the run is)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from workbench.accounts.models import User, Workspace
from workbench.lib.errors import ServiceError
from workbench.runs import states
from workbench.runs.models import (
    UNFINISHED_CANDIDATE_STATUSES,
    Candidate,
    CandidateStatus,
    Run,
    RunSource,
    RunStatus,
)

log = logging.getLogger(__name__)


def cancel_key(run_id: str) -> str:
    return f"fw:run:{run_id}:cancel"


def _redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def prompt_validate(prompt: str, system_prompt: str = "") -> tuple[str, str]:
    prompt = (prompt or "").strip()
    if not prompt:
        raise ServiceError("Write a prompt first.", field="prompt")
    limit = settings.FUSION_MAX_PROMPT_CHARS
    if len(prompt) + len(system_prompt or "") > limit:
        raise ServiceError(
            f"The prompt is {len(prompt) + len(system_prompt or ''):,} characters; "
            f"the limit is {limit:,}. Shorten it or raise FUSION_MAX_PROMPT_CHARS.",
            field="prompt",
        )
    return prompt, (system_prompt or "").strip()


@transaction.atomic
def run_create(
    *,
    workspace: Workspace,
    user: User | None,
    config: dict[str, Any],
    prompt: str,
    system_prompt: str = "",
    pool: Any = None,
    source: str = RunSource.WEB,
    rerun_of: Run | None = None,
    estimated_cost: Decimal | None = None,
) -> Run:
    """Store a queued run with its frozen configuration and hand it to a worker.

    ``config`` is a frozen pool configuration (``pools.services.pool_freeze``); the estimate is
    checked against the pool's per-run budget here, before anything is spent.
    """
    prompt, system_prompt = prompt_validate(prompt, system_prompt)
    from workbench.runs.engine_bridge import candidate_rows, spec_dict_of

    # pool_freeze keeps mode and budget inside "spec"; older/hand-made configs at the top.
    spec = spec_dict_of(config)
    budget = config.get("budget_usd", spec.get("budget_usd"))
    budget = Decimal(str(budget)) if budget not in (None, "") else None
    from workbench.pools.estimate import config_estimate

    # The engine would refuse these before any call; refusing here keeps them out of history.
    # Callers pass the estimate they showed; it is made here only when it is missing or a
    # per-run cap needs to know whether a model is unpriced.
    estimate = None
    if estimated_cost is None or budget is not None:
        estimate = config_estimate(config, prompt=prompt, system_prompt=system_prompt)
    if estimated_cost is None:
        assert estimate is not None
        estimated_cost = estimate.priced_usd
    if budget is not None and estimated_cost > budget:
        raise ServiceError(
            f"This run could cost up to ${estimated_cost:.4f}, over the pool's per-run cap "
            f"of ${budget:.4f}. Lower max tokens or members, or raise the cap.",
            field="prompt",
            code="over_run_cap",
        )
    if budget is not None and estimate is not None and estimate.has_unpriced:
        raise ServiceError(
            f"This run cannot start: {estimate.refusal or 'a model has no price'}.",
            field="prompt",
            code="unpriced_under_run_cap",
        )
    from workbench.usage.budgets import budget_reserve

    # The monthly caps, reserved under a lock held until this transaction commits the run.
    budget_reserve(workspace=workspace, user=user, estimate=estimated_cost)
    run = Run.objects.create(
        workspace=workspace,
        created_by=user,
        pool=pool,
        pool_name=config.get("name") or (pool.name if pool is not None else "ad hoc"),
        config=config,
        mode=config.get("mode") or spec.get("mode") or "best_of",
        prompt=prompt,
        system_prompt=system_prompt,
        source=source,
        rerun_of=rerun_of,
        estimated_cost=estimated_cost,
        budget_usd=budget,
    )
    Candidate.objects.bulk_create(
        Candidate(run=run, status=CandidateStatus.QUEUED, **row) for row in candidate_rows(config)
    )
    # Only once the run is committed may a worker look for it; a publish that fails then
    # (Redis restarting) must not undo or hide the stored run: the reaper hands it over later.
    transaction.on_commit(partial(run_dispatch, run_id=str(run.id)), robust=True)
    return run


def run_dispatch(*, run_id: str) -> bool:
    """Hand a stored run to a worker and record that the broker has it."""
    from workbench.runs.tasks import run_execute

    try:
        run_execute.delay(run_id)
    except Exception as exc:  # the broker's errors are many (kombu, redis, OS)
        log.warning("run %s could not reach a worker yet (%s); the reaper will retry", run_id, exc)
        return False
    Run.objects.filter(pk=run_id).update(dispatched_at=timezone.now())
    return True


def runs_redispatch_lost(
    *, older_than_s: float | None = None, run_ids: list[Any] | None = None
) -> list[str]:
    """Hand over again the queued runs (of ``run_ids``, or all) whose task never reached the
    broker, or reached it so long ago that the broker may have lost it (a Redis restarted
    without persistence comes back empty). A run waiting in a busy queue is left alone until
    ``FUSION_QUEUED_RESEND_S``; a second copy of its task is harmless, since only one delivery
    can claim the run."""
    after = settings.FUSION_REDISPATCH_AFTER_S if older_than_s is None else older_than_s
    now = timezone.now()
    never_sent = Q(dispatched_at__isnull=True, created_at__lt=now - timedelta(seconds=after))
    long_ago = Q(dispatched_at__lt=now - timedelta(seconds=settings.FUSION_QUEUED_RESEND_S))
    lost = Run.objects.filter(
        never_sent | long_ago, status=RunStatus.QUEUED, cancel_requested=False
    )
    if run_ids is not None:
        lost = lost.filter(pk__in=run_ids)
    handed = [str(pk) for pk in lost.values_list("pk", flat=True) if run_dispatch(run_id=str(pk))]
    if handed:
        log.warning("handed %d run(s) that never reached a worker to one again", len(handed))
    return handed


def run_cancel(*, run: Run, user: User) -> Run:
    """Ask the worker to stop the run; a queued run is cancelled at once."""
    if run.is_terminal:
        raise ServiceError("This run has already ended.")
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(cancel_requested=True)
        # Only a run no worker has claimed yet ends here; a running one is the worker's to end.
        if states.transition(
            str(run.pk),
            RunStatus.CANCELLED,
            only_from=frozenset({RunStatus.QUEUED}),
            finished_at=timezone.now(),
            error=f"Cancelled by {user.username} before it started.",
        ):
            Candidate.objects.filter(run_id=run.pk).update(status=CandidateStatus.CANCELLED)
    # The worker watches this key (it cannot wait on the database every 100 ms).
    _redis().set(cancel_key(str(run.pk)), user.username, ex=24 * 3600)
    return Run.objects.get(pk=run.pk)


def _ensure_credentials_usable(config: dict[str, Any], user: User, workspace: Workspace) -> None:
    """A rerun must not borrow a credential its author may not use (another member's personal
    one, or one deleted since): the frozen configuration names credentials by id."""
    from workbench.keys.selectors import credentials_usable_by
    from workbench.runs.engine_bridge import credential_id, display_of, provider_refs

    usable = set(credentials_usable_by(user, workspace).values_list("pk", flat=True))
    for ref in sorted(provider_refs(config)):
        if credential_id(ref) not in usable:
            label = display_of(config).get(ref, {}).get("label", ref)
            raise ServiceError(
                f"This run used the credential {label}, which you cannot use (it is someone "
                "else's personal credential, or it was deleted). Start a new run instead.",
                code="credential_unusable",
            )


def run_rerun(*, run: Run, user: User) -> Run:
    """A new run with the same prompt and the same frozen pool configuration."""
    _ensure_credentials_usable(run.config, user, run.workspace)
    return run_create(
        workspace=run.workspace,
        user=user,
        config=run.config,
        prompt=run.prompt,
        system_prompt=run.system_prompt,
        pool=run.pool,
        source=RunSource.WEB,
        rerun_of=run,
        estimated_cost=run.estimated_cost,
    )


@dataclass(frozen=True)
class Reaped:
    resumed: list[str]  # re-enqueued, to resume on another worker
    failed: list[str]  # out of resumptions: failed, partial output kept


def runs_reap(*, stale_after_s: int | None = None) -> Reaped:
    """Deal with running runs whose worker stopped sending heartbeats: nothing spins forever.

    A SIGKILLed worker's task comes back from the broker only after its visibility timeout
    (longer than the longest run), so the reaper does not wait for it: it re-enqueues the run,
    which resumes on any worker with its finished candidates kept, up to
    ``FUSION_RESUME_ATTEMPTS`` times; a run still silent after that is failed. The original
    delivery, when it comes back at last, finds the run running elsewhere or ended and does
    nothing.
    """
    from workbench.runs.tasks import run_execute

    stale_after = timedelta(seconds=stale_after_s or settings.FUSION_REAPER_STALE_S)
    now = timezone.now()
    cutoff = now - stale_after
    silent = Q(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff) & (
        Q(requeued_at__isnull=True) | Q(requeued_at__lt=cutoff)
    )
    resumed: list[str] = []
    out_of_resumes: list[Run] = []
    for run in Run.objects.filter(silent).only("pk", "attempts", "resumes"):
        if run.resumes >= settings.FUSION_RESUME_ATTEMPTS:
            out_of_resumes.append(run)
            continue
        with transaction.atomic():
            # Conditional on what was read: a worker that claimed it meanwhile keeps it.
            moved = Run.objects.filter(silent, pk=run.pk, attempts=run.attempts).update(
                resumes=F("resumes") + 1, requeued_at=now
            )
            if moved:
                run_execute.delay_on_commit(str(run.pk))
                resumed.append(str(run.pk))
    failed: list[str] = []
    seconds = int(stale_after.total_seconds())
    for run in out_of_resumes:
        tried = (
            f", and {run.resumes} resumption{'s' if run.resumes != 1 else ''} on another "
            "worker did not finish it"
            if run.resumes
            else ""
        )
        if run_fail_stalled(
            run_id=str(run.pk),
            attempt=run.attempts,
            reason=(
                "The worker running this run stopped responding (no heartbeat for "
                f"{seconds} s){tried}. Finished candidates are kept."
            ),
            part_reason="worker stopped responding",
            silent_since=cutoff,
        ):
            failed.append(str(run.pk))
    return Reaped(resumed=resumed, failed=failed)


def run_fail_stalled(
    *,
    run_id: str,
    attempt: int,
    reason: str,
    part_reason: str,
    silent_since: datetime | None = None,
) -> bool:
    """Fail a running run from outside its worker (the reaper, the hard time limit), keeping
    what its candidates wrote, and tell its viewers. Only while claim ``attempt`` holds (and,
    with ``silent_since``, only if no heartbeat came since): False when the run moved on."""
    with transaction.atomic():
        extra = {} if silent_since is None else {"heartbeat_at__lt": silent_since}
        # running -> failed, as the machine allows, while the claim holds.
        rows = Run.objects.filter(states.owned(run_id, attempt), **extra)
        if not rows.update(status=RunStatus.FAILED, error=reason, finished_at=timezone.now()):
            return False
        Candidate.objects.filter(run_id=run_id, status__in=UNFINISHED_CANDIDATE_STATUSES).update(
            status=CandidateStatus.FAILED, error=part_reason
        )
    publish_ended(run_id)
    return True


def publish_ended(run_id: str, *, status: str = RunStatus.FAILED) -> None:
    """Tell live viewers the run was ended from outside its worker: one ``run.<status>`` event
    after the last seq, which the stored record then covers."""
    from asgiref.sync import async_to_sync

    from workbench.runs.publish import publish_terminal

    run = Run.objects.only("last_seq", "error").get(pk=run_id)
    seq = async_to_sync(publish_terminal)(
        run_id, last_seq=run.last_seq, status=status, error=run.error
    )
    Run.objects.filter(pk=run_id).update(last_seq=seq)
