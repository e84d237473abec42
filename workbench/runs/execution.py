"""Executing a run in the worker: claim it, run the engine with a sink, record the outcome.

Celery cannot run ``async def`` tasks, so ``run_execute`` is synchronous: it claims the run,
then hands it to the worker process's long-lived engine loop (``engine_loop``) and waits. All
runs of a process share that loop's pooled HTTP client; database writes go to its small pool
of database threads.

Idempotent under redelivery: a run already ended is left alone; a run found ``running`` with
a fresh heartbeat belongs to a live worker (``RunBusy``: ask again later); a run found
``running`` and silent was started by a worker that died, so it resumes: finished candidates
are passed to the engine as ``completed`` and are not requested again, and the seq continues
where the live state ended. The reaper (``services.runs_reap``) re-enqueues such runs.

Time limits are enforced here, not by Celery (whose thread pool ignores them): at
``RUN_TIME_LIMIT_S`` the run is cancelled like a person would cancel it (what streamed is
kept) and marked failed, naming the time limit; if it has still not ended at
``RUN_HARD_TIME_LIMIT_S`` (something hung past cancellation), the task stops waiting, the
run's coroutine is cancelled and the run is failed with that reason, and the thread is free.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from fusion import events as ev
from fusion.engine import run_fusion
from fusion.errors import BudgetExceeded, ProviderError
from fusion.judge import verdict_to_dict
from fusion.providers.base import Endpoint, Provider, Timeouts
from fusion.redact import redact
from fusion.results import CompletedCandidate, RunResult
from fusion.types import ApiKey, ChatRequest, StreamItem
from workbench.keys.models import Credential
from workbench.keys.selectors import price_table
from workbench.keys.services import credential_endpoint
from workbench.runs import states
from workbench.runs.cancellation import cancel_watcher
from workbench.runs.engine_bridge import (
    completed_of,
    credential_id,
    display_of,
    provider_refs,
    spec_for_run,
)
from workbench.runs.engine_loop import ENGINE_LOOP
from workbench.runs.live import LiveStore
from workbench.runs.models import UNFINISHED_CANDIDATE_STATUSES, CandidateStatus, Run, RunStatus
from workbench.runs.publish import publish_events, shared_redis
from workbench.runs.recorder import RunRecorder
from workbench.runs.services import publish_ended, run_fail_stalled
from workbench.runs.sink import RunSink

log = logging.getLogger(__name__)
# Figures per run that the benchmark reads from the worker's log.
stats = logging.getLogger("workbench.runs.stats")


@dataclass(frozen=True)
class Claim:
    run_id: str
    workspace_id: int
    config: dict[str, Any]
    prompt: str
    system_prompt: str
    resumed: bool
    attempt: int  # the run's ``attempts`` this claim set: the fence of this worker's writes
    last_seq: int
    completed: dict[str, CompletedCandidate]


class RunBusy(Exception):
    """Another worker is running this run right now (its heartbeat is fresh): ask again later.

    A redelivered task can arrive while the first worker is still alive (a visibility timeout
    shorter than the run); taking over then would run it twice.
    """

    def __init__(self, retry_in_s: float) -> None:
        super().__init__(f"run is being executed elsewhere; retry in {retry_in_s:.0f} s")
        self.retry_in_s = retry_in_s


def run_execute(*, run_id: str) -> None:
    """Execute the run; raises ``RunBusy`` when a live worker already has it."""
    claim = _claim(run_id)
    # This (Celery) thread is done with the database; the run writes through the loop's pool.
    connection.close()
    if claim is None:
        return
    hard = settings.RUN_HARD_TIME_LIMIT_S
    try:
        ENGINE_LOOP.run(_execute(claim), timeout=hard)
    except TimeoutError:
        soft = settings.RUN_TIME_LIMIT_S
        log.error("run %s still running at its hard time limit (%g s): giving up", run_id, hard)
        run_fail_stalled(
            run_id=run_id,
            attempt=claim.attempt,
            reason=(
                f"The run did not stop at its time limit of {soft:g} s and was abandoned at "
                f"the hard time limit of {hard:g} s; partial output kept."
            ),
            part_reason="abandoned at the hard time limit",
        )
        connection.close()


def _alive(run: Run, now: datetime) -> float | None:
    """Seconds until a silent worker may be taken over, or None when it may be now."""
    if run.heartbeat_at is None:
        return None
    if run.requeued_at is not None and run.requeued_at >= run.heartbeat_at:
        return None  # the reaper found it silent and sent it here to be resumed
    age = (now - run.heartbeat_at).total_seconds()
    left = settings.FUSION_TAKEOVER_AFTER_S - age
    return left if left > 0 else None


def _claim(run_id: str) -> Claim | None:
    """Move the run to ``running`` with a new claim; None when there is nothing to do."""
    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_terminal:
            return None
        now = timezone.now()
        if run.status == RunStatus.RUNNING:
            wait = _alive(run, now)
            if wait is not None:
                raise RunBusy(wait + 1)
        if run.cancel_requested:
            # Asked to stop before this delivery (queued ones were cancelled at once): a run
            # resumed after its worker died, or one its own process cannot finish (gateway).
            if states.transition(run_id, RunStatus.CANCELLED, finished_at=now):
                run.candidates.filter(status__in=UNFINISHED_CANDIDATE_STATUSES).update(
                    status=CandidateStatus.CANCELLED
                )
                transaction.on_commit(lambda: publish_ended(run_id, status=RunStatus.CANCELLED))
            return None
        resumed = run.status == RunStatus.RUNNING
        attempt = run.attempts + 1
        # Conditional on the attempt read above: of two deliveries claiming at once (SQLite
        # has no row locks), one wins and the other finds nothing to do.
        if not states.transition(
            run_id,
            RunStatus.RUNNING,
            attempt=run.attempts,
            attempts=attempt,
            started_at=run.started_at or now,
            heartbeat_at=now,
        ):
            return None
    done = list(run.candidates.filter(status=CandidateStatus.DONE))
    return Claim(
        run_id=str(run.pk),
        workspace_id=run.workspace_id,
        config=run.config,
        prompt=run.prompt,
        system_prompt=run.system_prompt,
        resumed=resumed,
        attempt=attempt,
        last_seq=run.last_seq,
        completed=completed_of(done) if resumed else {},
    )


async def _execute(claim: Claim) -> None:
    cancel = asyncio.Event()

    def stop_lost() -> None:
        # The run ended, or moved to another worker, without this one: stop spending on it.
        cancel.set()

    positions = {row["member"]: i for i, row in enumerate(_members(claim.config))}
    providers = display_of(claim.config)
    recorder = RunRecorder(
        claim.run_id,
        positions=positions,
        providers=providers,
        executor=ENGINE_LOOP.db,
        attempt=claim.attempt,
        on_lost=stop_lost,
    )
    redis = shared_redis()
    live = LiveStore(redis)
    # A new run's id is a fresh UUID: it has no live state yet. A resumed one continues its own.
    snapshot = await live.snapshot(claim.run_id) if claim.resumed else None
    sink = RunSink(
        run_id=claim.run_id,
        live=live,
        publish=partial(publish_events, claim.run_id),
        recorder=recorder,
        resume_from=snapshot,
        first_seq=claim.last_seq,
        providers=providers,
        flush_interval=settings.FUSION_DELTA_FLUSH_S,
        on_lost=stop_lost,
    )
    if snapshot is not None:
        sink.seed(snapshot)
    result: RunResult | None = None
    failure: str | None = None
    # The time limit counts from here: the database reads below included.
    limit = settings.RUN_TIME_LIMIT_S
    watcher = cancel_watcher()
    watcher.watch(claim.run_id, cancel, limit)
    try:
        try:
            client = ENGINE_LOOP.http_client()
            endpoints = await recorder.call(_endpoints_for, claim, client)
            prices = await recorder.call(price_table)
            spec = spec_for_run(
                claim.config, prompt=claim.prompt, system_prompt=claim.system_prompt
            )
            sink.start()
            result = await run_fusion(
                spec,
                endpoints,
                sink,
                run_id=claim.run_id,
                prices=prices,
                cancel=cancel,
                completed=claim.completed,
                first_seq=sink.seq + 1,
            )
        except BudgetExceeded as exc:
            failure = str(exc)
        except Exception as exc:  # a bug must still end the run, visibly, not leave it spinning
            log.exception("run %s failed inside the worker", claim.run_id)
            failure = (
                f"Internal error in the worker ({type(exc).__name__}): {redact(str(exc))[:300]}"
            )
        finally:
            timed_out = watcher.forget(claim.run_id)
        if result is not None and result.status == "cancelled" and timed_out:
            failure = f"The run exceeded its time limit of {limit:g} s; partial output kept."
        if recorder.lost or sink.lost:
            log.warning("run %s ended elsewhere while this worker ran it", claim.run_id)
            sink.abort()
            return
        if failure is not None:
            await sink(ev.RunFailed(seq=0, run=claim.run_id, error=failure, totals={}))
        await sink.close()
        recorder.finalize(*_final_fields(result, failure, sink))
        await recorder.drain()
        stats.info("run %s: %d database writes", claim.run_id, recorder.writes)
    except asyncio.CancelledError:
        # The hard time limit: the task gave up waiting. Stop the sink's own tasks too.
        sink.abort()
        raise
    finally:
        await recorder.aclose()


def _members(config: dict[str, Any]) -> list[dict[str, Any]]:
    from workbench.runs.engine_bridge import candidate_rows

    return candidate_rows(config)


def _endpoints_for(claim: Claim, client: Any) -> dict[str, Endpoint]:
    """Decrypt the keys of every credential the run names (only here, only in memory)."""
    endpoints: dict[str, Endpoint] = {}
    display = display_of(claim.config)
    for ref in provider_refs(claim.config):
        pk = credential_id(ref)
        credential = (
            Credential.objects.prefetch_related("keys")
            .filter(pk=pk, workspace_id=claim.workspace_id)
            .first()
            if pk is not None
            else None
        )
        if credential is None:
            label = display.get(ref, {}).get("label", ref)
            endpoints[ref] = Endpoint(MissingProvider(name=label))
        else:
            endpoints[ref] = credential_endpoint(credential, client=client, timeouts=_timeouts())
    return endpoints


def _timeouts() -> Timeouts:
    return Timeouts(
        connect=settings.FUSION_CONNECT_TIMEOUT_S,
        first_token=settings.FUSION_FIRST_TOKEN_TIMEOUT_S,
        idle=settings.FUSION_IDLE_TIMEOUT_S,
        total=settings.FUSION_CALL_TIMEOUT_S,
    )


class MissingProvider(Provider):
    """Stands in for a credential deleted after the pool was frozen: every call fails clearly."""

    kind = "missing"

    async def stream(  # type: ignore[override]
        self, request: ChatRequest, key: ApiKey | None
    ) -> AsyncIterator[StreamItem]:
        raise ProviderError(
            "the credential this member used was deleted",
            provider=self.name,
            model=request.model,
            permanent=True,
        )
        yield  # pragma: no cover - makes this an async generator

    async def list_models(self, key: ApiKey | None) -> list[str]:
        return []


def _final_fields(
    result: RunResult | None, failure: str | None, sink: RunSink
) -> tuple[dict[str, Any], list[tuple[str, int, str, str]]]:
    fields: dict[str, Any] = {"last_seq": sink.seq, "judge_parts": sink.judge_parts()}
    if result is None:
        fields.update(status=RunStatus.FAILED, error=failure or "The run failed.")
        return fields, []
    totals = result.totals
    fields.update(
        status=result.status,
        error=result.error or result.judge_error or "",
        verdict=verdict_to_dict(result.verdict) if result.verdict is not None else None,
        winner=(result.verdict.winner or "") if result.verdict is not None else "",
        fused_text=result.answer or "",
        total_cost=totals.cost if totals.cost is not None else totals.priced_cost,
        cost_unpriced=totals.unpriced,
        input_tokens=totals.input_tokens,
        output_tokens=totals.output_tokens,
        wall_ms=totals.wall_ms,
    )
    if result.estimate is not None and result.estimate.usd is not None:
        fields["estimated_cost"] = result.estimate.usd
    if failure is not None:  # ended by the time limit: what streamed is kept, the run failed
        fields.update(status=RunStatus.FAILED, error=failure)
    unstarted = [
        (c.id, c.round, c.status, c.error or "")
        for c in result.candidates
        if c.status in ("cancelled", "skipped", "failed")
    ]
    return fields, unstarted
