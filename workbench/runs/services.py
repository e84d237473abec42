"""Writes about runs: create, cancel, rerun, reap. Execution itself is in ``execution``."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from workbench.accounts.models import User, Workspace
from workbench.lib.errors import ServiceError
from workbench.runs.models import (
    Candidate,
    CandidateStatus,
    Run,
    RunSource,
    RunStatus,
)


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
    if budget is not None and estimated_cost is not None and estimated_cost > budget:
        raise ServiceError(
            f"This run could cost up to ${estimated_cost:.4f}, over the pool's per-run cap "
            f"of ${budget:.4f}. Lower max tokens or members, or raise the cap.",
            field="prompt",
            code="over_run_cap",
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
    from workbench.runs.tasks import run_execute

    run_execute.delay_on_commit(str(run.id))
    return run


def run_cancel(*, run: Run, user: User) -> Run:
    """Ask the worker to stop the run; a queued run is cancelled at once."""
    if run.is_terminal:
        raise ServiceError("This run has already ended.")
    with transaction.atomic():
        locked = Run.objects.select_for_update().get(pk=run.pk)
        locked.cancel_requested = True
        fields = ["cancel_requested"]
        if locked.status == RunStatus.QUEUED:
            locked.status = RunStatus.CANCELLED
            locked.finished_at = timezone.now()
            locked.error = f"Cancelled by {user.username} before it started."
            fields += ["status", "finished_at", "error"]
            Candidate.objects.filter(run=locked).update(status=CandidateStatus.CANCELLED)
        locked.save(update_fields=fields)
    # The worker watches this key (it cannot wait on the database every 100 ms).
    _redis().set(cancel_key(str(run.pk)), user.username, ex=24 * 3600)
    return locked


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


def runs_reap(*, stale_after_s: int | None = None) -> list[str]:
    """Fail runs whose worker stopped sending heartbeats: nothing spins forever."""
    stale_after = timedelta(seconds=stale_after_s or settings.FUSION_REAPER_STALE_S)
    cutoff = timezone.now() - stale_after
    reaped: list[str] = []
    candidates = Run.objects.filter(status=RunStatus.RUNNING, heartbeat_at__lt=cutoff)
    for run_id in candidates.values_list("pk", flat=True):
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=run_id)
            if run.status != RunStatus.RUNNING or (run.heartbeat_at and run.heartbeat_at >= cutoff):
                continue
            seconds = int(stale_after.total_seconds())
            run.status = RunStatus.FAILED
            run.error = (
                f"The worker running this run stopped responding (no heartbeat for {seconds} s). "
                "Finished candidates are kept."
            )
            run.finished_at = timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
            Candidate.objects.filter(
                run=run,
                status__in=[
                    CandidateStatus.QUEUED,
                    CandidateStatus.STREAMING,
                    CandidateStatus.RETRYING,
                ],
            ).update(status=CandidateStatus.FAILED, error="worker stopped responding")
        _publish_terminal(run)
        reaped.append(str(run.pk))
    return reaped


def _publish_terminal(run: Run) -> None:
    """Tell live viewers the reaper ended the run: one run.failed event after the last seq."""
    from asgiref.sync import async_to_sync

    from workbench.runs.publish import publish_terminal

    seq = async_to_sync(publish_terminal)(
        str(run.pk), last_seq=run.last_seq, status="failed", error=run.error
    )
    Run.objects.filter(pk=run.pk).update(last_seq=seq)
