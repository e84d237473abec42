"""A single model (``<credential>/<model>``) through the engine's own call machinery, in the
web process serving the request.

``fusion.calls.Caller`` makes the call exactly as it makes a run's member calls: the key pool,
retries with backoff before the first token, the fallback models, the runaway guard, timing,
usage (counted by us when the provider reports none), cost and one ``CallRecord``. The
conversation reaches the model as the client sent it (``run_fusion`` takes a single prompt,
which would flatten it). What the call does is written by the worker's own ``RunRecorder``
(the call record, the candidate, heartbeats with the text so far, the run's outcome), so the
run looks like any other in the workbench; and a person's cancel on the run page and the run
time limit reach it through the same cancel watcher a worker uses.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import itertools
import logging
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from fusion import events as ev
from fusion.calls import Backoff, Caller, CallOutcome, CallState
from fusion.keypool import KeyPool
from fusion.providers.transport import HttpClient
from fusion.redact import redact
from fusion.types import CallRecord, Message
from workbench.gateway import services
from workbench.gateway.errors import GatewayError
from workbench.keys.ssrf import safe_provider_client
from workbench.runs.cancellation import cancel_watcher
from workbench.runs.engine_bridge import display_of
from workbench.runs.engine_loop import ENGINE_LOOP
from workbench.runs.models import RunStatus
from workbench.runs.recorder import RunRecorder
from workbench.tokens.models import ApiToken

log = logging.getLogger(__name__)
# How often a long call writes its heartbeat (and its text so far) to the run's record: well
# inside FUSION_REAPER_STALE_S, so the reaper never takes a live call for a dead one.
CHECKPOINT_S = 2.0
DISCONNECTED = "The client disconnected."

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HttpClient] = (
    weakref.WeakKeyDictionary()
)


def gateway_client() -> HttpClient:
    """The running loop's one pooled, SSRF-guarded client: connections to a provider are
    reused from one request to the next instead of being opened for each."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        limit = settings.FUSION_HTTP_MAX_CONNECTIONS
        client = _clients[loop] = safe_provider_client(max_connections=limit)
    return client


@atexit.register
def _close_clients() -> None:
    """Close each loop's client once its server has stopped the loop. daphne runs no ASGI
    lifespan shutdown, and an aiohttp session left open is reported as an error at exit."""
    for loop, client in list(_clients.items()):
        if loop.is_closed() or loop.is_running():
            continue
        with contextlib.suppress(Exception):
            loop.run_until_complete(client.aclose())


# ProviderError's text ends with " (HTTP <status>)" when the provider answered with one.
_HTTP_STATUS = re.compile(r"\(HTTP (\d{3})\)$")
# Upstream complaints about the request itself are the caller's to fix; anything about our
# credential or the provider (401, 403, 5xx, timeouts) is a bad gateway.
_CALLERS_FAULT = frozenset({400, 404, 413, 422, 429})


def status_of(error: str) -> int:
    found = _HTTP_STATUS.search(error)
    status = int(found.group(1)) if found else 502
    return status if status in _CALLERS_FAULT else 502


class PassthroughFlow:
    """Streams one call's text; ``outcome`` (the run as the gateway reports it) once it ends."""

    def __init__(
        self,
        *,
        token: ApiToken,
        call: services.Passthrough,
        messages: list[Message],
        base_url: str,
    ) -> None:
        self.token = token
        self.call = call
        self.run_id = call.run_id
        self.messages = tuple(messages)
        self.base_url = base_url
        self.outcome: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self._pieces: asyncio.Queue[str | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # True only while the provider call is in flight: a cancel then stops it. Once the call
        # has ended its recording is never interrupted, or the run would stay "running".
        self._calling = False
        self._stopped = ""  # why it was stopped, also when that came before the call began

    def start(self) -> None:
        """Make the call now, in its own task: the response follows it through ``deltas``."""
        self._task = asyncio.create_task(self._run(), name=f"passthrough {self.run_id}")

    async def deltas(self) -> AsyncIterator[str]:
        assert self._task is not None, "start() first"
        while (piece := await self._pieces.get()) is not None:
            yield piece
        await self._task  # a failed call raises its GatewayError here
        self.outcome = await sync_to_async(services.run_outcome)(self.run_id, self.base_url)

    async def cancel(self) -> None:
        """The client went away: stop the call, and wait until it is recorded as cancelled."""
        task = self._task
        if task is None:
            return
        self._stop(DISCONNECTED)
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: nobody is left to be told

    def _stop(self, reason: str) -> None:
        self._stopped = self._stopped or reason
        if self._calling and self._task is not None and not self._task.done():
            self._task.cancel(reason)

    async def _run(self) -> None:
        try:
            await self._call()
        finally:
            self._pieces.put_nowait(None)

    async def _call(self) -> None:
        call, member, run_id = self.call, self.call.member, self.run_id
        recorder = RunRecorder(
            run_id,
            positions={member.id: 0},
            providers=display_of(call.config),
            executor=ENGINE_LOOP.db,
            attempt=1,
        )
        numbers = itertools.count(1)

        def emit(cls: Callable[..., ev.Event], **fields: Any) -> None:
            event = cls(seq=next(numbers), run=run_id, **fields)
            recorder.on_event(event, event.seq)

        records: list[CallRecord] = []
        state = CallState(member.model, time.perf_counter())

        async def on_text(text: str) -> None:
            self._pieces.put_nowait(text)

        async def on_record(record: CallRecord) -> None:
            records.append(record)
            emit(ev.CallRecorded, call=record)

        async def on_retry(error: str, delay_s: float, model: str) -> None:
            emit(ev.CandidateRetrying, candidate=member.id, round=0, error=error,
                 attempt=state.attempts, delay_s=round(delay_s, 3), model=model)  # fmt: skip

        caller = Caller(
            endpoints=call.endpoints,
            # Named by the credential's label, which errors show (the worker names "cred:<id>").
            pools={
                ref: KeyPool(ep.keys, provider=ep.provider.name)
                for ref, ep in call.endpoints.items()
            },
            prices=call.prices,
            clock=time.perf_counter,
            backoff=Backoff(),
            max_attempts=call.max_attempts,
            on_record=on_record,
        )
        limit = settings.RUN_TIME_LIMIT_S
        cancel = asyncio.Event()
        watcher = cancel_watcher()
        watcher.watch(run_id, cancel, limit)
        helpers = [
            asyncio.create_task(self._stop_when(cancel)),
            asyncio.create_task(_checkpoints(recorder, state, member.id)),
        ]
        out: CallOutcome | None = None
        stopped = ""  # why the call did not end on its own: cancelled, or a bug
        self._calling = True
        try:
            if self._stopped:  # before the task even began: make no call at all
                raise asyncio.CancelledError(self._stopped)
            out = await caller.run(
                candidate=member.id,
                round=0,
                provider=member.provider,
                models=(member.model, *member.fallback_models),
                messages=self.messages,
                temperature=member.temperature,
                max_tokens=member.max_tokens,
                on_text=on_text,
                state=state,
                on_retry=on_retry,
            )
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # handled here: the call is recorded, the run ended below
            stopped = str(exc.args[0]) if exc.args else "cancelled"
        except Exception as exc:  # a bug must still end the run, visibly
            log.exception("passthrough run %s failed", run_id)
            stopped = f"Internal error in the gateway ({type(exc).__name__})."
        finally:
            self._calling = False
            timed_out = watcher.forget(run_id)
            for helper in helpers:
                helper.cancel()
        record = records[-1] if records else None
        fields, failure = self._ending(out, record, stopped, timed_out, limit)
        if out is not None and out.status == "ok":
            self.finish_reason = out.finish_reason
            emit(ev.CandidateFinished, candidate=member.id, round=0, model=out.model,
                 text=out.text, usage=out.usage, cost=out.cost, latency_ms=out.latency_ms,
                 ttft_ms=out.ttft_ms, finish_reason=out.finish_reason or "stop")  # fmt: skip
        else:
            cancelled = fields["status"] == RunStatus.CANCELLED
            emit(ev.CandidateFailed, candidate=member.id, round=0, error=fields["error"],
                 permanent=bool(out and out.permanent),
                 status="cancelled" if cancelled else "failed", text=state.text)  # fmt: skip
        recorder.finalize(fields, [])
        try:
            await recorder.drain()
        except Exception:
            log.exception("passthrough run %s: its record could not be written", run_id)
            failure = failure or GatewayError(
                502, "The answer could not be recorded.", code="internal_error"
            )
        finally:
            await recorder.aclose()
        if failure is not None:
            raise failure

    async def _stop_when(self, cancel: asyncio.Event) -> None:
        await cancel.wait()  # a person cancelled the run, or its time limit passed
        self._stop("run cancelled")

    def _ending(
        self,
        out: CallOutcome | None,
        record: CallRecord | None,
        stopped: str,
        timed_out: bool,
        limit: float,
    ) -> tuple[dict[str, Any], GatewayError | None]:
        """The run's final fields, and the error the client gets (None when it succeeded)."""
        cost = record.cost if record is not None else Decimal(0)
        fields: dict[str, Any] = {
            "winner": "",
            "fused_text": "",
            "total_cost": cost if cost is not None else Decimal(0),
            "cost_unpriced": cost is None,
            "input_tokens": record.usage.input_tokens if record else 0,
            "output_tokens": record.usage.output_tokens if record else 0,
            "wall_ms": record.latency_ms if record else 0.0,
        }
        if out is not None and out.status == "ok":
            winner = self.call.member.id
            fields.update(status=RunStatus.FINISHED, error="", winner=winner, fused_text=out.text)
            return fields, None
        if out is not None:
            message = redact(out.error or "the call failed", self.call.secrets)
            fields.update(status=RunStatus.FAILED, error=message)
            return fields, GatewayError(status_of(message), message, code="upstream_error")
        if timed_out:
            message = f"The call exceeded the run time limit of {limit:g} s; partial output kept."
            fields.update(status=RunStatus.FAILED, error=message)
            return fields, GatewayError(504, message, code="timeout")
        if stopped.startswith("Internal error"):
            fields.update(status=RunStatus.FAILED, error=stopped)
            return fields, GatewayError(502, stopped, code="internal_error")
        message = stopped if stopped == DISCONNECTED else "The run was cancelled in the workbench."
        fields.update(status=RunStatus.CANCELLED, error=message)
        return fields, GatewayError(502, message, code="run_cancelled")


async def _checkpoints(recorder: RunRecorder, state: CallState, member: str) -> None:
    while True:
        await asyncio.sleep(CHECKPOINT_S)
        recorder.checkpoint({f"{member}/0": state.text}, 0)
