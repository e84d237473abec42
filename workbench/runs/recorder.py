"""Database writes of an executing run, off the event loop and off the per-token path.

The engine's loop must never wait on the database, and Django's ORM is synchronous, so writes
go to the worker process's small pool of database threads (``engine_loop``), one at a time per
run and in order. What is written, and when:
- a candidate's row when it starts, and in full when it finishes or fails;
- every provider call record as it ends;
- texts of streaming parts, the heartbeat and the last seq at checkpoints (every ~2 s);
- the run's totals, verdict and final status once, from the engine's result.

Every write but the call records is fenced by the claim this worker holds (``states``): once
the run ended elsewhere (the reaper failed it, a person's cancel won, another worker resumed
it), the writes match no row, ``lost`` turns True and ``on_lost`` is called so the run stops.
Call records are written regardless: that spend happened.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from fusion import events as ev
from workbench.runs import states
from workbench.runs.models import Candidate, CandidateStatus, ProviderCall, Run, RunStatus

log = logging.getLogger(__name__)

_Job = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], "asyncio.Future[Any] | None"]


class RunRecorder:
    def __init__(
        self,
        run_id: str,
        *,
        positions: dict[str, int],
        providers: dict[str, dict[str, Any]],
        executor: Executor,
        attempt: int,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.attempt = attempt  # the claim this worker holds (``Run.attempts``)
        self.on_lost = on_lost
        self.lost = False
        self.positions = positions  # member id -> order in the pool, for display
        # "cred:<id>" -> {"label", "kind"}: the credential as it was frozen with the pool.
        self.labels = {ref: str(info.get("label", ref)) for ref, info in providers.items()}
        self.kinds = {ref: str(info.get("kind", "")) for ref, info in providers.items()}
        self._executor = executor
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None
        self.writes = 0  # write statements issued; a test holds it low and above zero

    # --- sink interface (called on the event loop, never blocks) ---------------------------------
    def on_event(self, event: ev.Event, seq: int) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            self._submit(handler, self, event)

    def checkpoint(self, texts: dict[str, str], seq: int) -> None:
        self._submit(RunRecorder._write_checkpoint, self, texts, seq)

    def finalize(self, fields: dict[str, Any], unstarted: list[tuple[str, int, str, str]]) -> None:
        """The run's outcome, and the end of candidates that never started (member, round,
        status, reason): quorum reached first, budget spent, run cancelled."""
        self._submit(RunRecorder._write_final, self, fields, unstarted)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a synchronous database read after the queued writes, and wait for it."""
        result: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._enqueue((fn, args, kwargs, result))
        return await result

    async def drain(self) -> None:
        """Wait for every queued write; re-raise the first that failed."""
        await self._queue.join()
        if self._error is not None:
            raise self._error

    async def aclose(self) -> None:
        if self._writer is not None:
            self._writer.cancel()

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        self._enqueue((fn, args, {}, None))

    def _enqueue(self, job: _Job) -> None:
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_loop(), name=f"db {self.run_id}")
        self._queue.put_nowait(job)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            fn, args, kwargs, result = await self._queue.get()
            try:
                value = await loop.run_in_executor(
                    self._executor, partial(_in_fresh_connection, fn, *args, **kwargs)
                )
            except Exception as exc:
                if result is not None:
                    result.set_exception(exc)
                else:
                    log.exception("run %s: a database write failed", self.run_id)
                    self._error = self._error or exc
            else:
                if result is not None:
                    result.set_result(value)
            finally:
                self._queue.task_done()
            if self.lost and self.on_lost is not None:
                on_lost, self.on_lost = self.on_lost, None
                on_lost()

    # --- writes (run in the recorder's thread) --------------------------------------------------
    def _candidates(self, member: str, round_: int) -> Any:
        """The candidate's row, only while this worker's claim on the run holds."""
        return Candidate.objects.filter(
            run_id=self.run_id,
            member=member,
            round=round_,
            run__status=RunStatus.RUNNING,
            run__attempts=self.attempt,
        )

    def _update_or_create(self, member: str, round_: int, fields: dict[str, Any]) -> None:
        self.writes += 1
        if self._candidates(member, round_).update(**fields):
            return
        # No row: a part the run did not start with (a debate round), or the claim is lost.
        if not self._still_owned():
            return
        self.writes += 1
        Candidate.objects.update_or_create(
            run_id=self.run_id, member=member, round=round_, defaults=fields
        )

    def _update(self, member: str, round_: int, fields: dict[str, Any]) -> None:
        self.writes += 1
        if not self._candidates(member, round_).update(**fields):
            self._still_owned()

    def _still_owned(self) -> bool:
        if Run.objects.filter(states.owned(self.run_id, self.attempt)).exists():
            return True
        self._lose()
        return False

    def _lose(self) -> None:
        if not self.lost:
            log.warning(
                "run %s: claim %d no longer holds (the run ended or was taken over elsewhere); "
                "stopping its writes",
                self.run_id,
                self.attempt,
            )
        self.lost = True

    def _write_candidate_started(self, event: ev.CandidateStarted) -> None:
        self._update_or_create(
            event.candidate,
            event.round,
            {
                "status": CandidateStatus.STREAMING,
                "model": event.model,
                "provider": self.labels.get(event.provider, event.provider),
                "provider_kind": self.kinds.get(event.provider, ""),
                "position": self.positions.get(event.candidate, 0),
                "text": "",
                "error": "",
            },
        )

    def _write_candidate_retrying(self, event: ev.CandidateRetrying) -> None:
        self._update(
            event.candidate,
            event.round,
            {"status": CandidateStatus.RETRYING, "error": event.error, "model": event.model},
        )

    def _write_candidate_finished(self, event: ev.CandidateFinished) -> None:
        self._update(
            event.candidate,
            event.round,
            {
                "status": CandidateStatus.DONE,
                "error": "",
                "model": event.model,
                "text": event.text,
                "finish_reason": event.finish_reason,
                "input_tokens": event.usage.input_tokens,
                "output_tokens": event.usage.output_tokens,
                "tokens_estimated": event.usage.estimated,
                "cost": event.cost,
                "ttft_ms": event.ttft_ms,
                "latency_ms": event.latency_ms,
            },
        )

    def _write_candidate_failed(self, event: ev.CandidateFailed) -> None:
        # A part may fail before it ever started (a skipped debate round): then it is created.
        self._update_or_create(
            event.candidate,
            event.round,
            {
                "status": event.status,
                "error": event.error,
                "permanent": event.permanent,
                "text": event.text,
                "position": self.positions.get(event.candidate, 0),
            },
        )

    def _write_call(self, event: ev.CallRecorded) -> None:
        # Not fenced: a call a worker made after losing the run still cost what it cost.
        self.writes += 1
        call = event.call
        ProviderCall.objects.get_or_create(
            run_id=self.run_id,
            call_id=call.call_id,
            defaults={
                "candidate": call.candidate,
                "round": call.round,
                "phase": call.phase or "",
                "provider": self.labels.get(call.provider, call.provider),
                "model": call.model,
                "key_label": call.key_label or "",
                "status": call.status,
                "input_tokens": call.usage.input_tokens,
                "output_tokens": call.usage.output_tokens,
                "tokens_estimated": call.usage.estimated,
                "cost": call.cost,
                "ttft_ms": call.ttft_ms,
                "latency_ms": call.latency_ms,
                "attempts": call.attempts,
                "error": call.error or "",
            },
        )

    def _write_checkpoint(self, texts: dict[str, str], seq: int) -> None:
        judge_texts = {part: text for part, text in texts.items() if part.startswith("judge")}
        with transaction.atomic():
            run = (
                Run.objects.select_for_update()
                .filter(states.owned(self.run_id, self.attempt))
                .only("judge_parts")
                .first()
            )
            if run is None:  # the run ended or moved on without this worker: no heartbeat
                self._lose()
                return
            for part, text in texts.items():
                if part in judge_texts:
                    continue
                member, round_ = part.rsplit("/", 1)
                self.writes += 1
                self._candidates(member, int(round_)).update(text=text)
            parts = dict(run.judge_parts or {})
            for part, text in judge_texts.items():
                parts[part] = {**parts.get(part, {}), "text": text}
            self.writes += 1
            Run.objects.filter(states.owned(self.run_id, self.attempt)).update(
                heartbeat_at=timezone.now(), last_seq=seq, judge_parts=parts
            )

    def _write_final(
        self, fields: dict[str, Any], unstarted: list[tuple[str, int, str, str]]
    ) -> None:
        fields = dict(fields)
        status = fields.pop("status")
        with transaction.atomic():
            self.writes += 1
            moved = states.transition(
                self.run_id, status, attempt=self.attempt, finished_at=timezone.now(), **fields
            )
            if not moved:  # ended by someone else first (the reaper, the hard time limit)
                self._lose()
                return
            for member, round_, cand_status, reason in unstarted:
                Candidate.objects.filter(
                    run_id=self.run_id,
                    member=member,
                    round=round_,
                    status__in=[CandidateStatus.QUEUED, CandidateStatus.STREAMING],
                ).update(status=cand_status, error=reason)


def _in_fresh_connection(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # The thread keeps one connection for the whole run (closed in ``close``); only one the
    # server has dropped is replaced, not one per write as CONN_MAX_AGE=0 would do.
    if connection.connection is not None and not connection.is_usable():
        connection.close()
    return fn(*args, **kwargs)


_HANDLERS: dict[type[ev.Event], Callable[..., None]] = {
    ev.CandidateStarted: RunRecorder._write_candidate_started,
    ev.CandidateRetrying: RunRecorder._write_candidate_retrying,
    ev.CandidateFinished: RunRecorder._write_candidate_finished,
    ev.CandidateFailed: RunRecorder._write_candidate_failed,
    ev.CallRecorded: RunRecorder._write_call,
}
