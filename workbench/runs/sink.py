"""The sink the engine emits into while a run executes in the worker.

It turns the engine's events into what the rest of the system sees:
- deltas coalesced (at most one flush per ``flush_interval``, the first one at once, so an
  idle stream's first token is not held back) before they cross the channel layer;
- one seq per published event, continuing across worker restarts;
- the live state in Redis (``live.LiveStore``), written before the events are published, so a
  client that reads a snapshot and then the tail never misses or repeats text;
- the database through the ``RunRecorder``, in batches and at each candidate's end, never
  once per token.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from redis.exceptions import RedisError

from fusion import events as ev
from workbench.runs.live import LiveSnapshot, LiveStore, LiveWrite

log = logging.getLogger(__name__)
REDIS_RETRY_S = 0.5

Publish = Callable[[list[str], list[int]], Awaitable[None]]


class Recorder(Protocol):
    """Where the sink sends what must reach the database (see ``recorder.RunRecorder``)."""

    def on_event(self, event: ev.Event, seq: int) -> None: ...

    def checkpoint(self, texts: dict[str, str], seq: int) -> None: ...


def candidate_part(candidate: str, round_: int) -> str:
    return f"{candidate}/{round_}"


def judge_part(judge: str, phase: str) -> str:
    return f"{judge}/{phase}"


class RunSink:
    def __init__(
        self,
        *,
        run_id: str,
        live: LiveStore,
        publish: Publish,
        recorder: Recorder,
        resume_from: LiveSnapshot | None = None,
        first_seq: int = 0,
        flush_interval: float = 0.05,
        checkpoint_interval: float = 2.0,
        providers: dict[str, dict[str, Any]] | None = None,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.run_id = run_id
        # True once the live state shows the run ended without this sink (the reaper, the
        # hard time limit): nothing more is written there, and ``on_lost`` stops the run.
        self.lost = False
        self.on_lost = on_lost
        # "cred:<id>" -> {"label", "kind"}: what a person sees instead of the reference.
        self.providers = providers or {}
        self.live = live
        self.publish = publish
        self.recorder = recorder
        self.flush_interval = flush_interval
        self.checkpoint_interval = checkpoint_interval
        self.seq = max(first_seq, resume_from.seq if resume_from else 0)
        # Full texts as chunk lists: joined only at checkpoints, never per token.
        self._texts: dict[str, list[str]] = {}
        self._pending: dict[str, list[str]] = {}
        self._pending_meta: dict[str, tuple[str, str, Any, Any]] = {}
        self._streaming: set[str] = set()
        # The sink is the only writer of this run's live state, so it keeps its own copy of
        # the run's and parts' fields to merge partial updates into.
        self._run: dict[str, Any] = {}
        self._parts: dict[str, dict[str, Any]] = {}
        self._order = 0
        self._calls: dict[str, dict[str, Any]] = {}
        self._written_seq = self.seq  # the seq Redis holds, as far as this sink knows
        # Events with their seq and state change, waiting for the writer, in order.
        self._outbox: list[tuple[str, int, LiveWrite]] = []
        self._wake = asyncio.Event()
        self._written = asyncio.Event()
        self._last_flush = 0.0
        self._closed = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"write {self.run_id}"),
            asyncio.create_task(self._checkpoint_loop(), name=f"checkpoint {self.run_id}"),
        ]

    async def close(self) -> None:
        # The writer is told to stop rather than cancelled: a cancellation landing inside a
        # Redis pipeline can be swallowed by the client and leave the loop waiting forever.
        self._closed = True
        self._wake.set()
        if self._tasks:
            self._tasks[1].cancel()  # the checkpoint loop only sleeps: safe to cancel
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.flush()
        self._checkpoint()

    def abort(self) -> None:
        """Stop at once, sending nothing more (the run is being abandoned)."""
        self._closed = True
        self.lost = True
        for task in self._tasks:
            task.cancel()

    # --- the engine calls this -------------------------------------------------------------
    async def __call__(self, event: ev.Event) -> None:
        """Take one event. Never waits on Redis or the channel layer: the engine's own path
        stays cheap, and the writer task sends everything, in order, behind it."""
        if isinstance(event, ev.CandidateDelta):
            self._buffer(candidate_part(event.candidate, event.round), event.text, event)
            return
        if isinstance(event, ev.JudgeDelta):
            self._buffer(judge_part(event.judge, event.phase), event.text, event)
            return
        self._move_pending_to_outbox()
        self._emit(event)
        self._wake.set()

    def _buffer(self, part: str, text: str, event: ev.CandidateDelta | ev.JudgeDelta) -> None:
        if part not in self._pending:
            self._pending[part] = []
            if isinstance(event, ev.CandidateDelta):
                self._pending_meta[part] = (
                    "candidate.delta",
                    "candidate",
                    event.candidate,
                    event.round,
                )
            else:
                self._pending_meta[part] = ("judge.delta", "judge", event.judge, event.phase)
        self._pending[part].append(text)
        self._texts.setdefault(part, []).append(text)
        self._wake.set()

    def _move_pending_to_outbox(self) -> None:
        """Coalesce the buffered deltas, one event per part, numbered, into the outbox."""
        if not self._pending:
            return
        pending, meta = self._pending, self._pending_meta
        self._pending, self._pending_meta = {}, {}
        for part, chunks in pending.items():
            text = "".join(chunks)
            type_, key, who, where = meta[part]
            self.seq += 1
            second = "round" if key == "candidate" else "phase"
            wire = json.dumps(
                {
                    "seq": self.seq,
                    "run": self.run_id,
                    "type": type_,
                    key: who,
                    second: where,
                    "text": text,
                }
            )
            self._outbox.append((wire, self.seq, LiveWrite(seq=self.seq, appends={part: text})))

    # --- writing to Redis and the channel layer ----------------------------------------------
    async def _write_loop(self) -> None:
        while not self._closed:
            await self._wake.wait()
            if self._closed:
                return
            if not self._outbox:
                # Only deltas: at most one flush per interval, the first one at once.
                wait = self._last_flush + self.flush_interval - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
            await self.flush()

    async def flush(self) -> None:
        """Send everything taken so far: one Redis transaction, then one publish."""
        self._wake.clear()
        self._move_pending_to_outbox()
        if self.lost:
            self._outbox.clear()
            return
        if not self._outbox:
            return
        batch, self._outbox = self._outbox, []
        change = _merged([change for _, _, change in batch])
        try:
            intact = await self.live.write(self.run_id, change, previous_seq=self._written_seq)
            if not intact and await self.live.ended(self.run_id):
                # Someone else ended the run (the reaper wrote its end here): stop, rather than
                # overwrite what its viewers were told.
                self._lose()
                return
            if not intact:
                # Redis lost the run's state (restarted): write it whole, texts included, so
                # a snapshot read from it is complete again.
                await self.live.write(
                    self.run_id, self._whole_state(change.seq), previous_seq=change.seq
                )
            await self.publish([wire for wire, _, _ in batch], [seq for _, seq, _ in batch])
        except (RedisError, OSError):
            # Redis is away: keep the batch for the next try. The database record and seq
            # stay true meanwhile; watchers heal from a snapshot when it is back.
            log.warning("run %s: Redis unavailable; live events held back", self.run_id)
            self._outbox[:0] = batch
            if not self._closed:
                await asyncio.sleep(REDIS_RETRY_S)
                self._wake.set()
            return
        self._written_seq = change.seq
        self._last_flush = time.monotonic()

    def _lose(self) -> None:
        log.warning("run %s: ended elsewhere; this worker stops sending its events", self.run_id)
        self.lost = True
        self._outbox.clear()
        if self.on_lost is not None:
            on_lost, self.on_lost = self.on_lost, None
            on_lost()

    def _whole_state(self, seq: int) -> LiveWrite:
        """The run's live state as of ``seq``: texts without what was taken after it (still
        buffered, or in the outbox behind this batch)."""
        later: dict[str, int] = {}
        for part, chunks in self._pending.items():
            later[part] = later.get(part, 0) + sum(map(len, chunks))
        for _, _, change in self._outbox:
            for part, text in change.appends.items():
                later[part] = later.get(part, 0) + len(text)
        texts = {}
        for part, chunks in self._texts.items():
            text = "".join(chunks)
            texts[part] = text[: len(text) - later.get(part, 0)]
        return LiveWrite(
            seq=seq,
            resets=set(texts),
            appends={part: text for part, text in texts.items() if text},
            run=dict(self._run),
            parts={part: dict(data) for part, data in self._parts.items()},
            calls=dict(self._calls),
        )

    # --- everything but deltas -------------------------------------------------------------
    def _emit(self, event: ev.Event) -> None:
        self.seq += 1
        data = event.to_dict()
        data["seq"] = self.seq
        change = LiveWrite(seq=self.seq)
        self._apply(event, data, change)
        # A snapshot of the merged state now: later events change the sink's copies.
        if change.run is not None:
            change.run = dict(change.run)
        change.parts = {part: dict(value) for part, value in change.parts.items()}
        self._outbox.append((json.dumps(data), self.seq, change))
        self.recorder.on_event(event, self.seq)

    def _name_provider(self, data: dict[str, Any]) -> None:
        info = self.providers.get(data.get("provider", ""))
        if info:
            data["provider"] = info.get("label", data["provider"])
            data["provider_kind"] = info.get("kind", "")

    def _apply(self, event: ev.Event, data: dict[str, Any], change: LiveWrite) -> None:
        """Update the live state for one event, and trim from the wire what clients have."""
        if "provider" in data:
            self._name_provider(data)
        if isinstance(event, ev.RunStarted):
            for member in data["members"]:
                self._name_provider(member)
            change.run = {
                "status": "running",
                "mode": event.mode,
                "members": data["members"],
                "estimated_cost": data["estimated_cost"],
                "unpriced_models": data["unpriced_models"],
            }
        elif isinstance(event, ev.CandidateStarted):
            part = candidate_part(event.candidate, event.round)
            # A candidate started again (after a worker restart) starts its text over.
            self._texts[part] = []
            change.resets.add(part)
            self._streaming.add(part)
            change.parts[part] = {
                "kind": "candidate",
                "candidate": event.candidate,
                "round": event.round,
                "status": "streaming",
                "provider": data["provider"],
                "provider_kind": data.get("provider_kind", ""),
                "model": event.model,
                "error": None,
            }
        elif isinstance(event, ev.CandidateRetrying):
            part = candidate_part(event.candidate, event.round)
            change.parts[part] = {
                "kind": "candidate",
                "candidate": event.candidate,
                "round": event.round,
                "status": "retrying",
                "error": event.error,
                "attempt": event.attempt,
                "model": event.model,
            }
        elif isinstance(event, ev.CandidateFinished):
            part = candidate_part(event.candidate, event.round)
            self._streaming.discard(part)
            data.pop("text", None)
            change.parts[part] = {
                "kind": "candidate",
                "candidate": event.candidate,
                "round": event.round,
                "status": "done",
                "model": event.model,
                "usage": data["usage"],
                "cost": data["cost"],
                "ttft_ms": event.ttft_ms,
                "latency_ms": event.latency_ms,
                "finish_reason": event.finish_reason,
            }
        elif isinstance(event, ev.CandidateFailed):
            part = candidate_part(event.candidate, event.round)
            self._streaming.discard(part)
            data.pop("text", None)
            change.parts[part] = {
                "kind": "candidate",
                "candidate": event.candidate,
                "round": event.round,
                "status": event.status,
                "error": event.error,
                "permanent": event.permanent,
            }
        elif isinstance(event, ev.JudgeStarted):
            part = judge_part(event.judge, event.phase)
            self._texts[part] = []
            change.resets.add(part)
            self._streaming.add(part)
            change.parts[part] = {
                "kind": "judge",
                "judge": event.judge,
                "phase": event.phase,
                "status": "streaming",
                "provider": data["provider"],
                "provider_kind": data.get("provider_kind", ""),
                "model": event.model,
                "labels": data["labels"],
            }
        elif isinstance(event, ev.JudgeFinished | ev.JudgeFailed):
            # Every judge pass ends with the verdict (or its failure).
            ended = "done" if isinstance(event, ev.JudgeFinished) else "failed"
            for part, known in self._parts.items():
                if known.get("kind") == "judge" and known.get("status") == "streaming":
                    change.parts[part] = {"status": ended}
                    self._streaming.discard(part)
            verdict = data.get("verdict")
            change.run = {**self._run_state(), "judge_status": "done" if verdict else "failed",
                          "verdict": verdict, "judge_error": data.get("error")}  # fmt: skip
        elif isinstance(event, ev.CallRecorded):
            self._name_provider(data["call"])
            self._order += 1
            change.calls[event.call.call_id] = {**data["call"], "order": self._order}
            self._calls[event.call.call_id] = change.calls[event.call.call_id]
        elif isinstance(event, ev.RunFinished | ev.RunFailed | ev.RunCancelled):
            status = {ev.RunFinished: None, ev.RunFailed: "failed", ev.RunCancelled: "cancelled"}[
                type(event)
            ] or data["status"]
            change.run = {**self._run_state(), "status": status, "totals": data.get("totals"),
                          "winner": data.get("winner"), "error": data.get("error")}  # fmt: skip
            change.expire = True
        self._remember(change)

    def _run_state(self) -> dict[str, Any]:
        return dict(self._run)

    def _remember(self, change: LiveWrite) -> None:
        if change.run is not None:
            self._run = {**self._run, **change.run}
            change.run = self._run
        for part, value in change.parts.items():
            self._parts[part] = {**self._parts.get(part, {}), **value}
            change.parts[part] = self._parts[part]

    def seed(self, snapshot: LiveSnapshot) -> None:
        """Continue from the live state an earlier attempt of this run left."""
        self._run = dict(snapshot.run)
        self._parts = {
            part: {k: v for k, v in data.items() if k != "text"}
            for part, data in snapshot.parts.items()
        }
        self._order = len(snapshot.calls)

    def judge_parts(self) -> dict[str, dict[str, Any]]:
        """Every judge pass with its details and whole text, for the run's final record."""
        return {
            part: {
                **{k: v for k, v in data.items() if k != "status"},
                "status": "done",
                "text": "".join(self._texts.get(part, [])),
            }
            for part, data in self._parts.items()
            if data.get("kind") == "judge"
        }

    # --- database checkpoints ----------------------------------------------------------------
    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(self.checkpoint_interval)
            self._checkpoint()

    def _checkpoint(self) -> None:
        # Judge passes are short and their text is final only at the end: always include them.
        parts = self._streaming | {part for part in self._texts if part.startswith("judge")}
        texts = {part: "".join(self._texts.get(part, [])) for part in parts}
        self.recorder.checkpoint(texts, self.seq)


def _merged(changes: list[LiveWrite]) -> LiveWrite:
    """One write for a batch of changes, in order: a reset drops the text appended before it."""
    out = LiveWrite(seq=changes[-1].seq)
    for change in changes:
        for part in change.resets:
            out.resets.add(part)
            out.appends.pop(part, None)
        for part, text in change.appends.items():
            out.appends[part] = out.appends.get(part, "") + text
        if change.run is not None:
            out.run = change.run
        out.parts.update(change.parts)
        out.calls.update(change.calls)
        out.expire = out.expire or change.expire
    return out
