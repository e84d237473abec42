"""One logical provider call: key choice, retries, fallback models, timing and its record.

Before the first token a retryable error is tried again (jittered exponential backoff, at least
the provider's Retry-After) up to ``max_attempts`` times per model, then the next fallback model
is tried; a permanent error moves to the next model at once. A 401/403 drops the key and tries
another without counting an attempt. After the first token any failure ends the call: the text
so far is kept, never spliced onto another model's answer.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from fusion.costs import Price, cost_for
from fusion.errors import ProviderError, TruncatedStream
from fusion.keypool import KeyPool
from fusion.providers.base import Endpoint
from fusion.tokens import estimate_prompt_tokens, estimate_tokens
from fusion.types import (
    ApiKey,
    CallRecord,
    CallStatus,
    ChatRequest,
    Message,
    StreamEnd,
    TextDelta,
    Usage,
)

OnText = Callable[[str], Awaitable[None]]
OnRecord = Callable[[CallRecord], Awaitable[None]]


@dataclass(frozen=True)
class Backoff:
    """Retry delays: ``base_s`` * 2^(n-1), capped, scaled by a random 50-100 %."""

    base_s: float = 0.5
    cap_s: float = 8.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        delay: float = min(self.cap_s, self.base_s * 2.0 ** (attempt - 1))
        delay *= 0.5 + rng.random() / 2
        return max(delay, retry_after or 0.0)


class CallState:
    """What a call has produced so far; read by the caller when the call is cancelled."""

    __slots__ = ("attempts", "first_token", "key_label", "model", "parts", "started")

    def __init__(self, model: str, started: float) -> None:
        self.model = model
        self.started = started
        self.parts: list[str] = []
        self.first_token: float | None = None
        self.key_label: str | None = None
        self.attempts = 0

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True)
class CallOutcome:
    status: CallStatus
    text: str
    model: str
    usage: Usage
    cost: Decimal | None
    ttft_ms: float | None
    latency_ms: float
    finish_reason: str | None
    error: str | None = None
    permanent: bool = False


def runaway_char_limit(max_tokens: int | None) -> float:
    """Characters after which a stream is past ``max_tokens`` beyond doubt (none: no limit)."""
    if max_tokens is None:
        return float("inf")
    return max_tokens * 4 * 2 + 400


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


# Told when a call will be tried again before its first token: (error, delay in s, next model).
OnRetry = Callable[[str, float, str], Awaitable[None]]


class Caller:
    """Makes the calls of one run, sharing its key pools, prices and clock."""

    def __init__(
        self,
        *,
        endpoints: Mapping[str, Endpoint],
        pools: Mapping[str, KeyPool],
        prices: Mapping[str, Price] | None,
        clock: Callable[[], float],
        backoff: Backoff,
        max_attempts: int,
        on_record: OnRecord,
    ) -> None:
        self.endpoints = endpoints
        self.pools = pools
        self.prices = prices
        self.clock = clock
        self.backoff = backoff
        self.max_attempts = max(1, max_attempts)
        self.on_record = on_record
        self.rng = random.Random()

    def cost(self, usage: Usage, model: str) -> Decimal | None:
        if usage.reported_cost is None and usage.input_tokens == usage.output_tokens == 0:
            return Decimal(0)  # nothing was used, so nothing is owed even when unpriced
        return cost_for(usage, model, self.prices)

    async def record(
        self,
        *,
        candidate: str,
        round: int,
        provider: str,
        state: CallState,
        status: CallStatus,
        usage: Usage,
        cost: Decimal | None,
        error: str | None,
        phase: str | None,
    ) -> CallRecord:
        ttft = None if state.first_token is None else _ms(state.first_token - state.started)
        rec = CallRecord(
            call_id=f"{candidate}/{round}/{phase or 'answer'}/{uuid.uuid4().hex[:8]}",
            candidate=candidate,
            round=round,
            provider=provider,
            model=state.model,
            key_label=state.key_label,
            status=status,
            usage=usage,
            cost=cost,
            ttft_ms=ttft,
            latency_ms=_ms(self.clock() - state.started),
            attempts=state.attempts,
            error=error,
            phase=phase,
        )
        await self.on_record(rec)
        return rec

    async def skip(
        self,
        *,
        candidate: str,
        round: int,
        provider: str,
        model: str,
        reason: str,
        phase: str | None,
    ) -> CallRecord:
        """Record a call that was never made (budget reached, deadline passed)."""
        state = CallState(model, self.clock())
        return await self.record(
            candidate=candidate,
            round=round,
            provider=provider,
            state=state,
            status="skipped",
            usage=Usage(),
            cost=Decimal(0),
            error=reason,
            phase=phase,
        )

    def _partial_usage(self, messages: Sequence[Message], state: CallState) -> Usage:
        # Streamed tokens of a failed or cancelled call are billed too; count them ourselves.
        if state.first_token is None:
            return Usage()
        return Usage(estimate_prompt_tokens(messages), estimate_tokens(state.text), estimated=True)

    async def run(
        self,
        *,
        candidate: str,
        round: int,
        provider: str,
        models: Sequence[str],
        messages: tuple[Message, ...],
        temperature: float | None,
        max_tokens: int | None,
        on_text: OnText,
        state: CallState,
        phase: str | None = None,
        on_retry: OnRetry | None = None,
    ) -> CallOutcome:
        """Make the call; on cancellation record it as cancelled and re-raise."""
        try:
            outcome = await self._run(
                provider, models, messages, temperature, max_tokens, on_text, state, on_retry
            )
        except asyncio.CancelledError as exc:
            reason = str(exc.args[0]) if exc.args else "cancelled"
            usage = self._partial_usage(messages, state)
            await self.record(
                candidate=candidate,
                round=round,
                provider=provider,
                state=state,
                status="cancelled",
                usage=usage,
                cost=self.cost(usage, state.model),
                error=reason,
                phase=phase,
            )
            raise
        await self.record(
            candidate=candidate,
            round=round,
            provider=provider,
            state=state,
            status=outcome.status,
            usage=outcome.usage,
            cost=outcome.cost,
            error=outcome.error,
            phase=phase,
        )
        return outcome

    async def _run(
        self,
        provider: str,
        models: Sequence[str],
        messages: tuple[Message, ...],
        temperature: float | None,
        max_tokens: int | None,
        on_text: OnText,
        state: CallState,
        on_retry: OnRetry | None = None,
    ) -> CallOutcome:
        endpoint = self.endpoints.get(provider)
        if endpoint is None:
            return self._failed(state, messages, f"no provider named {provider!r}", True)
        pool = self.pools[provider]
        error: ProviderError | None = None
        for index, model in enumerate(models):
            if index and error is not None and on_retry is not None:
                await on_retry(str(error), 0.0, model)  # falling back to the next model
            state.model = model
            tries = 0
            while True:
                try:
                    key = await pool.acquire(model)
                except ProviderError as exc:  # every key rejected: no model here can help
                    return self._failed(state, messages, str(exc), True)
                state.key_label = key.label if key is not None else None
                state.attempts += 1
                tries += 1
                request = ChatRequest(model, messages, temperature, max_tokens)
                try:
                    end = await self._attempt(endpoint, request, key, on_text, state)
                except ProviderError as exc:
                    error = exc
                else:
                    usage = end.usage or Usage(
                        estimate_prompt_tokens(messages), estimate_tokens(state.text), True
                    )
                    return CallOutcome(
                        status="ok",
                        text=state.text,
                        model=model,
                        usage=usage,
                        cost=self.cost(usage, model),
                        ttft_ms=None
                        if state.first_token is None
                        else _ms(state.first_token - state.started),
                        latency_ms=_ms(self.clock() - state.started),
                        finish_reason=end.finish_reason,
                    )
                if state.first_token is not None:
                    return self._failed(state, messages, str(error), error.permanent)
                if error.status in (401, 403) and key is not None:
                    pool.rejected(key)
                    tries -= 1  # the key failed, not the model: try the next key
                    continue
                if error.status == 429 and key is not None:
                    pool.rate_limited(key, error.retry_after)
                if error.permanent or tries >= self.max_attempts:
                    break
                if error.status == 429 and pool.available() > 0:
                    continue  # another key is ready now: no reason to wait
                delay = self.backoff.delay(tries, error.retry_after, self.rng)
                if on_retry is not None:
                    await on_retry(str(error), delay, model)
                await asyncio.sleep(delay)
        assert error is not None
        return self._failed(state, messages, str(error), error.permanent)

    async def _attempt(
        self,
        endpoint: Endpoint,
        request: ChatRequest,
        key: ApiKey | None,
        on_text: OnText,
        state: CallState,
    ) -> StreamEnd:
        provider = endpoint.provider
        end: StreamEnd | None = None
        stream = provider.stream(request, key)
        clock, parts = self.clock, state.parts
        # A provider that ignores max_tokens must not stream (and bill) forever: allow the
        # slack of our chars/4 token estimate, then cut it.
        char_limit = runaway_char_limit(request.max_tokens)
        streamed = 0
        try:
            # A safety net only: providers enforce their own first-token and idle timeouts.
            async with asyncio.timeout(provider.timeouts.total):
                # Read to the end rather than stopping at StreamEnd, so the connection is
                # released cleanly back to the pool.
                async for item in stream:
                    if type(item) is TextDelta:
                        text = item.text
                        if not text:
                            continue
                        if state.first_token is None:
                            state.first_token = clock()
                        parts.append(text)
                        await on_text(text)
                        streamed += len(text)
                        if streamed > char_limit:
                            raise ProviderError(
                                f"kept streaming past max_tokens={request.max_tokens}; cut off",
                                provider=provider.name,
                                model=request.model,
                                permanent=True,
                            )
                    elif isinstance(item, StreamEnd):
                        end = item
        except TimeoutError:
            raise ProviderError(
                f"no answer within {provider.timeouts.total:g} s",
                provider=provider.name,
                model=request.model,
                permanent=False,
            ) from None
        except ProviderError:
            raise
        except Exception as exc:  # a provider bug must end this call, not the run
            raise ProviderError(
                f"unexpected {type(exc).__name__}",
                provider=provider.name,
                model=request.model,
                permanent=True,
            ) from exc
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if end is None:
            raise TruncatedStream(
                "stream ended without a finish reason",
                provider=provider.name,
                model=request.model,
                permanent=False,
            )
        return end

    def _failed(
        self, state: CallState, messages: Sequence[Message], error: str, permanent: bool
    ) -> CallOutcome:
        usage = self._partial_usage(messages, state)
        return CallOutcome(
            status="failed",
            text=state.text,
            model=state.model,
            usage=usage,
            cost=self.cost(usage, state.model),
            ttft_ms=None if state.first_token is None else _ms(state.first_token - state.started),
            latency_ms=_ms(self.clock() - state.started),
            finish_reason=None,
            error=error,
            permanent=permanent,
        )
