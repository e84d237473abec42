"""Run one fusion: fan out to the members (and debate rounds), then the judge, emitting events.

``run_fusion`` is the only entry point. It refuses a run whose estimate is over budget, then:
members answer in parallel (retries, fallbacks and key pools in ``fusion.calls``); a round ends
when ``quorum`` members are done, when ``deadline_s`` passes (the rest are cancelled and
recorded) or when all are done; the judge fuses the usable answers. A failed member or judge
does not fail the run: only a run without any usable candidate does. Setting ``cancel`` closes
every open stream at once and ends the run as cancelled, partial texts kept.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from fusion.budget import budget_refusal, estimate_run_cost
from fusion.calls import Backoff, Caller, CallOutcome, CallState
from fusion.costs import Price, price_book
from fusion.errors import BudgetExceeded, FusionError
from fusion.events import (
    CallRecorded,
    CandidateDelta,
    CandidateFailed,
    CandidateFinished,
    CandidateRetrying,
    CandidateStarted,
    Event,
    JudgeDelta,
    JudgeFailed,
    JudgeFinished,
    JudgeStarted,
    RunCancelled,
    RunFailed,
    RunFinished,
    RunStarted,
    jsonable,
)
from fusion.judge import Verdict, sole_verdict, verdict_to_dict
from fusion.keypool import DEFAULT_COOLDOWN_S, KeyPool
from fusion.providers.base import Endpoint
from fusion.results import (
    CandidateResult,
    CompletedCandidate,
    CostEstimate,
    RunResult,
    RunStatus,
    Totals,
    candidate_key,
)
from fusion.strategies import JudgeCandidate, Strategy, get_strategy
from fusion.types import CallRecord, Member, Message, RunSpec, Usage

Sink = Callable[[Event], Awaitable[None]]

MAX_MEMBERS = 16


def round_to_ms(seconds: float) -> float:
    return round(seconds, 3)


class JudgeError(FusionError):
    """A judge pass failed or was skipped; the candidates stand without a verdict."""


def validate_spec(spec: RunSpec) -> None:
    if not 1 <= len(spec.members) <= MAX_MEMBERS:
        raise ValueError(f"a run needs 1 to {MAX_MEMBERS} members, not {len(spec.members)}")
    ids = [m.id for m in spec.members]
    if len(set(ids)) != len(ids):
        raise ValueError("member ids must be unique")
    if spec.quorum is not None and spec.quorum < 1:
        raise ValueError("quorum must be at least 1")
    if spec.deadline_s is not None and spec.deadline_s <= 0:
        raise ValueError("deadline_s must be positive")


async def run_fusion(
    spec: RunSpec,
    endpoints: Mapping[str, Endpoint],
    sink: Sink,
    *,
    run_id: str,
    prices: Mapping[str, Price] | None = None,
    cancel: asyncio.Event | None = None,
    completed: Mapping[str, CompletedCandidate] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    first_seq: int = 1,
    backoff: Backoff | None = None,
    key_cooldown_s: float = DEFAULT_COOLDOWN_S,
) -> RunResult:
    """Run ``spec`` against ``endpoints`` (provider name → provider + keys), events to ``sink``.

    ``completed`` maps ``candidate_key(id, round)`` to answers of an earlier attempt of this
    run, which are not requested again; ``first_seq`` continues that attempt's sequence.
    Raises ``BudgetExceeded`` (before any call) when the estimate is over ``budget_usd``, or
    when a budget is set and a model the run may call has no price (no cap can count it).
    """
    validate_spec(spec)
    prices = price_book(prices)  # looked up for every call: ready it once
    estimate = estimate_run_cost(spec, prices)
    refusal = budget_refusal(estimate, spec.budget_usd)
    if refusal is not None:
        raise BudgetExceeded(refusal)
    run = _Run(
        spec=spec,
        endpoints=endpoints,
        sink=sink,
        run_id=run_id,
        prices=prices,
        completed=completed or {},
        clock=clock,
        first_seq=first_seq,
        backoff=backoff or Backoff(),
        key_cooldown_s=key_cooldown_s,
        estimate=estimate,
    )
    return await run.execute(cancel)


class _Gate:
    """One sink call at a time, in arrival order: an ``asyncio.Lock`` without its coroutines
    on the uncontended path, which is taken for every token."""

    __slots__ = ("_busy", "_waiters")

    def __init__(self) -> None:
        self._busy = False
        self._waiters: deque[asyncio.Future[None]] = deque()

    def take(self) -> bool:
        """Enter at once if the gate is free (no coroutine); else ``await enter()``."""
        if self._busy:
            return False
        self._busy = True
        return True

    async def enter(self) -> None:
        if not self._busy:
            self._busy = True
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # leave() hands the gate over, still busy
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.leave()  # handed over just as we were cancelled: pass it on
            else:
                self._waiters.remove(waiter)
            raise

    def leave(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._busy = False


class _Run:
    def __init__(
        self,
        *,
        spec: RunSpec,
        endpoints: Mapping[str, Endpoint],
        sink: Sink,
        run_id: str,
        prices: Mapping[str, Price] | None,
        completed: Mapping[str, CompletedCandidate],
        clock: Callable[[], float],
        first_seq: int,
        backoff: Backoff,
        key_cooldown_s: float,
        estimate: CostEstimate,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.run_id = run_id
        self.completed = completed
        self.clock = clock
        self.estimate = estimate
        self.strategy: Strategy = get_strategy(spec.mode)
        self.seq = first_seq - 1
        self._gate = _Gate()
        self.calls: list[CallRecord] = []
        self.results: dict[tuple[str, int], CandidateResult] = {}
        self.latest: dict[str, CandidateResult] = {}  # member id -> latest usable answer
        self.spent = Decimal(0)
        self.cancelled = False
        self.started = clock()
        self.deadline = None if spec.deadline_s is None else self.started + spec.deadline_s
        pools = {
            # The provider's own name (a credential's label), not the endpoint's reference
            # ("cred:<id>"): it is what a person reads in "every key was rejected".
            name: KeyPool(ep.keys, provider=ep.provider.name, default_cooldown_s=key_cooldown_s)
            for name, ep in endpoints.items()
        }
        self.caller = Caller(
            endpoints=endpoints,
            pools=pools,
            prices=prices,
            clock=clock,
            backoff=backoff,
            max_attempts=spec.max_attempts,
            on_record=self._recorded,
        )

    # --- events --------------------------------------------------------------------------

    async def emit(self, cls: type[Event], **fields: Any) -> None:
        # One sink call at a time, in seq order, even when the sink awaits.
        gate = self._gate
        if not gate.take():
            await gate.enter()
        try:
            self.seq += 1
            await self.sink(cls(self.seq, self.run_id, **fields))
        finally:
            gate.leave()

    def _streamer(self, build: Callable[[int, str], Event]) -> Callable[[str], Awaitable[None]]:
        """The per-token sink path: one event per provider delta, nothing re-encoded, no
        generic ``emit``."""
        gate, sink = self._gate, self.sink

        async def on_text(text: str) -> None:
            if not gate.take():
                await gate.enter()
            try:
                self.seq += 1
                await sink(build(self.seq, text))
            finally:
                gate.leave()

        return on_text

    async def _recorded(self, record: CallRecord) -> None:
        self.calls.append(record)
        if record.cost is not None:
            self.spent += record.cost
        await self.emit(CallRecorded, call=record)

    def budget_reached(self) -> bool:
        return self.spec.budget_usd is not None and self.spent >= self.spec.budget_usd

    # --- the run -------------------------------------------------------------------------

    async def execute(self, cancel: asyncio.Event | None) -> RunResult:
        main = asyncio.ensure_future(self._orchestrate())
        watcher = None if cancel is None else asyncio.ensure_future(self._watch(cancel, main))
        try:
            return await main
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if not self.cancelled or (task is not None and task.cancelling()):
                raise
            # ``cancel`` was set before the run took its first step.
            await self.emit(RunCancelled, totals=jsonable(self.totals()))
            return self.result("cancelled", error="run cancelled")
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _watch(self, cancel: asyncio.Event, main: asyncio.Future[RunResult]) -> None:
        await cancel.wait()
        self.cancelled = True
        main.cancel("run cancelled")

    async def _orchestrate(self) -> RunResult:
        try:
            await self.emit(
                RunStarted,
                mode=self.spec.mode,
                members=tuple(
                    {"id": m.id, "provider": m.provider, "model": m.model}
                    for m in self.spec.members
                ),
                quorum=self.spec.quorum,
                deadline_s=self.spec.deadline_s,
                estimated_cost=self.estimate.usd,
                unpriced_models=self.estimate.unpriced_models,
                resumed=tuple(sorted(self.completed)),
            )
            await self._members_phase()
            return await self._judge_phase()
        except asyncio.CancelledError:
            if not self.cancelled:
                raise  # cancelled from outside: not ours to turn into a result
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            await self.emit(RunCancelled, totals=jsonable(self.totals()))
            return self.result("cancelled", error="run cancelled")

    async def _members_phase(self) -> None:
        participants = list(self.spec.members)
        for round in range(self.strategy.member_rounds(self.spec)):
            if round > 0:
                # Only members that answered the last round revise; a lone one has no debate.
                participants = [
                    m
                    for m in participants
                    if m.id in self.latest and self.latest[m.id].round == round - 1
                ]
                if len(participants) < 2:
                    return
                if self._deadline_passed():
                    for m in participants:
                        await self._skip(m, round, "deadline passed")
                    return
            await self._round(participants, round)

    def _deadline_passed(self) -> bool:
        return self.deadline is not None and self.clock() >= self.deadline

    async def _round(self, members: Sequence[Member], round: int) -> None:
        tasks: dict[asyncio.Task[CandidateResult], Member] = {}
        done_ok = 0
        for m in members:
            prior = self.completed.get(candidate_key(m.id, round))
            if prior is not None:
                self._store(self._resumed(m, round, prior))
                done_ok += 1
                continue
            messages = self._messages(m, round)
            tasks[asyncio.create_task(self._member(m, round, messages))] = m
        quorum = None if self.spec.quorum is None else min(self.spec.quorum, len(members))
        pending = set(tasks)
        reason = ""
        try:
            while pending:
                if quorum is not None and done_ok >= quorum:
                    reason = "quorum reached"
                    break
                timeout = None
                if self.deadline is not None:
                    timeout = self.deadline - self.clock()
                    if timeout <= 0:
                        reason = "deadline passed"
                        break
                done, pending = await asyncio.wait(
                    pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                done_ok += sum(1 for t in done if t.result().status == "ok")
        except BaseException:
            # Cancelled, or the sink failed: no member task may outlive the run.
            await self._stop(pending, tasks, round, "run cancelled")
            raise
        await self._stop(pending, tasks, round, reason)

    async def _stop(
        self,
        pending: set[asyncio.Task[CandidateResult]],
        tasks: Mapping[asyncio.Task[CandidateResult], Member],
        round: int,
        reason: str,
    ) -> None:
        if not pending:
            return
        stopping = list(pending)
        for t in stopping:
            t.cancel(reason)
        outcomes = await asyncio.gather(*stopping, return_exceptions=True)
        for t, outcome in zip(stopping, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                # Cancelled before it ever ran: record it all the same.
                await self._unstarted(tasks[t], round, reason)

    def _messages(self, member: Member, round: int) -> tuple[Message, ...]:
        own = self.latest.get(member.id)
        others = [r.text for mid, r in self.latest.items() if mid != member.id]
        return self.strategy.member_messages(
            self.spec, member, round, None if own is None else own.text, others
        )

    def _store(self, result: CandidateResult) -> CandidateResult:
        self.results[(result.id, result.round)] = result
        if result.status == "ok":
            self.latest[result.id] = result
        return result

    def _resumed(self, m: Member, round: int, prior: CompletedCandidate) -> CandidateResult:
        return CandidateResult(
            id=m.id,
            round=round,
            provider=m.provider,
            model=prior.model or m.model,
            status="ok",
            text=prior.text,
            usage=prior.usage,
            cost=prior.cost,
            ttft_ms=prior.ttft_ms,
            latency_ms=prior.latency_ms,
            finish_reason=prior.finish_reason,
            resumed=True,
        )

    # --- one member ----------------------------------------------------------------------

    async def _member(
        self, m: Member, round: int, messages: tuple[Message, ...]
    ) -> CandidateResult:
        if self.budget_reached():
            return await self._skip(m, round, "budget reached")
        await self.emit(
            CandidateStarted, candidate=m.id, round=round, provider=m.provider, model=m.model
        )
        state = CallState(m.model, self.clock())
        run_id, cid = self.run_id, m.id
        on_text = self._streamer(lambda seq, text: CandidateDelta(seq, run_id, cid, round, text))

        async def on_retry(error: str, delay_s: float, model: str) -> None:
            await self.emit(
                CandidateRetrying,
                candidate=cid,
                round=round,
                error=error,
                attempt=state.attempts,
                delay_s=round_to_ms(delay_s),
                model=model,
            )

        try:
            out = await self.caller.run(
                candidate=m.id,
                round=round,
                provider=m.provider,
                models=(m.model, *m.fallback_models),
                messages=messages,
                temperature=m.temperature,
                max_tokens=m.max_tokens,
                on_text=on_text,
                state=state,
                on_retry=on_retry,
            )
        except asyncio.CancelledError as exc:
            reason = str(exc.args[0]) if exc.args else "cancelled"
            await self.emit(
                CandidateFailed,
                candidate=m.id,
                round=round,
                error=reason,
                permanent=False,
                status="cancelled",
                text=state.text,
            )
            # Returning (not re-raising) hands the partial result to whoever cancelled us.
            return self._store(self._from_state(m, round, state, "cancelled", reason))
        return await self._finish_member(m, round, out)

    async def _finish_member(self, m: Member, round: int, out: CallOutcome) -> CandidateResult:
        result = CandidateResult(
            id=m.id,
            round=round,
            provider=m.provider,
            model=out.model,
            status="ok" if out.status == "ok" else "failed",
            text=out.text,
            usage=out.usage,
            cost=out.cost,
            ttft_ms=out.ttft_ms,
            latency_ms=out.latency_ms,
            finish_reason=out.finish_reason,
            error=out.error,
            permanent=out.permanent,
        )
        if result.status == "ok":
            await self.emit(
                CandidateFinished,
                candidate=m.id,
                round=round,
                model=out.model,
                text=out.text,
                usage=out.usage,
                cost=out.cost,
                latency_ms=out.latency_ms,
                ttft_ms=out.ttft_ms,
                finish_reason=out.finish_reason or "stop",
            )
        else:
            await self.emit(
                CandidateFailed,
                candidate=m.id,
                round=round,
                error=out.error or "failed",
                permanent=out.permanent,
                text=out.text,
            )
        return self._store(result)

    def _from_state(
        self, m: Member, round: int, state: CallState, status: Any, error: str
    ) -> CandidateResult:
        ttft = None if state.first_token is None else (state.first_token - state.started) * 1000
        return CandidateResult(
            id=m.id,
            round=round,
            provider=m.provider,
            model=state.model,
            status=status,
            text=state.text,
            ttft_ms=ttft,
            latency_ms=(self.clock() - state.started) * 1000,
            error=error,
        )

    async def _skip(self, m: Member, round: int, reason: str) -> CandidateResult:
        await self.caller.skip(
            candidate=m.id,
            round=round,
            provider=m.provider,
            model=m.model,
            reason=reason,
            phase=None,
        )
        await self.emit(
            CandidateFailed,
            candidate=m.id,
            round=round,
            error=reason,
            permanent=False,
            status="skipped",
        )
        return self._store(
            CandidateResult(m.id, round, m.provider, m.model, "skipped", error=reason)
        )

    async def _unstarted(self, m: Member, round: int, reason: str) -> None:
        state = CallState(m.model, self.clock())
        await self.caller.record(
            candidate=m.id,
            round=round,
            provider=m.provider,
            state=state,
            status="cancelled",
            usage=Usage(),
            cost=Decimal(0),
            error=reason,
            phase=None,
        )
        await self.emit(
            CandidateFailed,
            candidate=m.id,
            round=round,
            error=reason,
            permanent=False,
            status="cancelled",
        )
        self._store(self._from_state(m, round, state, "cancelled", reason))

    # --- the judge -----------------------------------------------------------------------

    async def _judge_phase(self) -> RunResult:
        usable = [
            JudgeCandidate(m.id, self.latest[m.id].round, self.latest[m.id].text)
            for m in self.spec.members
            if m.id in self.latest
        ]
        if not usable:
            error = "no usable candidate: every member failed, was cancelled or skipped"
            await self.emit(RunFailed, error=error, totals=jsonable(self.totals()))
            return self.result("failed", error=error)
        verdict: Verdict | None = None
        judge_error: str | None = None
        if self.spec.judge is not None:
            try:
                if len(usable) == 1:
                    verdict = sole_verdict(usable[0].id)
                else:
                    verdict = await self.strategy.judge(self.spec, usable, self._judge_call)
            except FusionError as exc:
                judge_error = str(exc)
                await self.emit(JudgeFailed, error=judge_error)
            else:
                await self.emit(JudgeFinished, verdict=verdict_to_dict(verdict))
        status: RunStatus = "finished_without_verdict" if judge_error else "finished"
        answer = None if verdict is None else self.strategy.answer(verdict, usable)
        await self.emit(
            RunFinished,
            status=status,
            totals=jsonable(self.totals()),
            winner=None if verdict is None else verdict.winner,
        )
        return self.result(status, verdict=verdict, answer=answer, judge_error=judge_error)

    async def _judge_call(
        self,
        messages: tuple[Message, ...],
        *,
        judge_id: str,
        phase: str,
        labels: Mapping[str, str],
    ) -> str:
        js = self.spec.judge
        assert js is not None
        if self.budget_reached():
            await self.caller.skip(
                candidate=judge_id,
                round=0,
                provider=js.provider,
                model=js.model,
                reason="budget reached",
                phase=phase,
            )
            raise JudgeError("the judge was skipped: budget reached")
        await self.emit(
            JudgeStarted,
            judge=judge_id,
            phase=phase,
            provider=js.provider,
            model=js.model,
            labels=dict(labels),
        )

        run_id = self.run_id
        on_text = self._streamer(lambda seq, text: JudgeDelta(seq, run_id, judge_id, phase, text))

        out = await self.caller.run(
            candidate=judge_id,
            round=0,
            provider=js.provider,
            models=(js.model,),
            messages=messages,
            temperature=js.temperature,
            max_tokens=js.max_tokens,
            on_text=on_text,
            state=CallState(js.model, self.clock()),
            phase=phase,
        )
        if out.status != "ok":
            raise JudgeError(f"the judge failed: {out.error}")
        return out.text

    # --- results -------------------------------------------------------------------------

    def totals(self) -> Totals:
        tokens_in = sum(c.usage.input_tokens for c in self.calls)
        tokens_out = sum(c.usage.output_tokens for c in self.calls)
        priced = self.spent
        unpriced = any(c.cost is None for c in self.calls)
        for r in self.results.values():
            if r.resumed:  # spent by an earlier attempt; its calls were recorded then
                tokens_in += r.usage.input_tokens
                tokens_out += r.usage.output_tokens
                if r.cost is None:
                    unpriced = True
                else:
                    priced += r.cost
        return Totals(
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost=None if unpriced else priced,
            priced_cost=priced,
            unpriced=unpriced,
            wall_ms=round((self.clock() - self.started) * 1000, 3),
            calls=len(self.calls),
        )

    def result(
        self,
        status: RunStatus,
        *,
        verdict: Verdict | None = None,
        answer: str | None = None,
        error: str | None = None,
        judge_error: str | None = None,
    ) -> RunResult:
        order = {m.id: i for i, m in enumerate(self.spec.members)}
        candidates = sorted(self.results.values(), key=lambda r: (r.round, order[r.id]))
        return RunResult(
            run_id=self.run_id,
            status=status,
            candidates=tuple(candidates),
            verdict=verdict,
            calls=tuple(self.calls),
            totals=self.totals(),
            answer=answer,
            error=error,
            judge_error=judge_error,
            estimate=self.estimate,
            last_seq=self.seq,
        )


__all__ = [
    "Backoff",
    "BudgetExceeded",
    "CandidateResult",
    "CompletedCandidate",
    "JudgeError",
    "RunResult",
    "candidate_key",
    "estimate_run_cost",
    "run_fusion",
]
