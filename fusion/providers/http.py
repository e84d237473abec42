"""What the wire-protocol providers share: one pooled httpx client, SSE streaming, timeouts,
error classification and key redaction. Subclasses only build requests and read events.
"""

from __future__ import annotations

import asyncio
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.base import Provider, Timeouts
from fusion.providers.classify import UpstreamError, clip, http_error, load_json, stream_error
from fusion.providers.transport import ShardedTransport
from fusion.redact import redact
from fusion.sse import SseDecoder, SseError, SseEvent
from fusion.tokens import estimate_prompt_tokens, tokens_for_chars
from fusion.types import ApiKey, ChatRequest, Message, StreamEnd, StreamItem, TextDelta, Usage

MAX_ERROR_BODY = 64 * 1024
# After the end marker only the chunked-encoding trailer should follow; reading it keeps the
# connection reusable, but a server that holds the line open must not delay the answer.
DRAIN_S = 0.25
MAX_MODEL_PAGES = 20
LIST_MODELS = "(list models)"


def make_client(
    *, trust_env: bool = True, proxy: str | None = None, shards: int = 16
) -> httpx.AsyncClient:
    """The long-lived pooled client to share between providers on one event loop.

    fusion never reads the environment for a proxy: pass ``proxy`` explicitly.
    """
    transport = ShardedTransport(
        shards,
        # Hundreds of concurrent streams must not queue behind httpx's default 100.
        limits=httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=30),
        trust_env=trust_env,
        proxy=proxy,
    )
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(10.0, read=None, pool=None),
        follow_redirects=False,
        trust_env=trust_env,
    )


@dataclass(frozen=True, slots=True)
class HttpCall:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


class CallState:
    """What one streamed call has learned so far; providers fill it from events."""

    __slots__ = (
        "chars_out",
        "done",
        "finish_reason",
        "input_tokens",
        "output_tokens",
        "reported_cost",
        "request",
    )

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self.finish_reason: str | None = None
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.reported_cost: Decimal | None = None
        self.done = False  # an explicit end marker ([DONE], message_stop) was seen
        self.chars_out = 0


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def truncated(state: CallState) -> UpstreamError:
    return UpstreamError(
        f"stream ended without a finish reason after {state.chars_out} characters",
        permanent=False,
        truncated=True,
    )


class HttpProvider(Provider):
    """A provider reached over HTTP with an SSE streaming endpoint."""

    default_base_url = ""

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None = None,
        client: httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(name=name, timeouts=timeouts)
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if not self.base_url:
            raise ValueError(f"{type(self).__name__} needs a base_url")
        self.extra_headers = dict(headers or {})
        self._client = client
        self._owns_client = client is None
        t = self.timeouts
        self._http_timeout = httpx.Timeout(connect=t.connect, read=None, write=t.connect, pool=None)

    @property
    def client(self) -> httpx.AsyncClient:
        # Convenience only: a client made here is bound to the first loop that uses it.
        if self._client is None:
            self._client = make_client()
        return self._client

    async def aclose(self) -> None:
        """Close the client if this provider made it; a shared client is its owner's."""
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    # --- what subclasses provide -------------------------------------------------------

    @abstractmethod
    def auth_headers(self, key: ApiKey | None) -> dict[str, str]: ...

    @abstractmethod
    def stream_call(self, request: ChatRequest, key: ApiKey | None) -> HttpCall: ...

    @abstractmethod
    def on_event(self, event: SseEvent, state: CallState) -> str | None:
        """Update ``state`` from one event; return answer text, if any; raise UpstreamError."""

    @abstractmethod
    def models_page(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        """URL and query parameters of one page of the model list."""

    @abstractmethod
    def parse_models(self, payload: Any) -> tuple[list[str], str | None]:
        """Model ids on one page and the cursor of the next, if any."""

    def finish(self, state: CallState) -> str:
        """The finish reason of a stream that has ended; raise if it was cut short."""
        if state.finish_reason is None:
            raise truncated(state)
        return state.finish_reason

    # --- streaming ----------------------------------------------------------------------

    async def stream(self, request: ChatRequest, key: ApiKey | None) -> AsyncIterator[StreamItem]:
        loop = asyncio.get_running_loop()
        t = self.timeouts
        total_at = loop.time() + t.total
        deadline = min(total_at, loop.time() + t.first_token)
        first = True
        items = self._items(request, key)
        try:
            while True:
                # One timeout per step, never across the yield, so that a deadline cannot fire
                # while the consumer is busy with an item.
                try:
                    async with asyncio.timeout_at(deadline) as scope:
                        item = await anext(items)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if not scope.expired():
                        raise
                    raise self._timeout_error(request.model, first, deadline >= total_at) from None
                yield item
                first = False
                deadline = min(total_at, loop.time() + t.idle)
        finally:
            await items.aclose()

    def _timeout_error(self, model: str, first: bool, total: bool) -> ProviderError:
        t = self.timeouts
        if total:
            message = f"no complete answer within {t.total}s (total timeout)"
        elif first:
            message = f"no first token within {t.first_token}s"
        else:
            message = f"no token for {t.idle}s (idle timeout)"
        return ProviderError(message, provider=self.name, model=model, permanent=False)

    async def _items(
        self, request: ChatRequest, key: ApiKey | None
    ) -> AsyncGenerator[StreamItem, None]:
        state = CallState(request)
        answered = False
        failure: ProviderError | None = None
        try:
            call = self.stream_call(request, key)
            async with self.client.stream(
                "POST", call.url, headers=call.headers, json=call.body, timeout=self._http_timeout
            ) as response:
                answered = True
                await self._check_response(response)
                decoder = SseDecoder()
                chunks = response.aiter_bytes()
                async for chunk in chunks:
                    for event in decoder.feed(chunk):
                        text = self.on_event(event, state)
                        if text:
                            state.chars_out += len(text)
                            yield TextDelta(text)
                        if state.done:
                            break
                    if state.done:
                        await _drain(chunks)
                        break
                decoder.close()
            yield StreamEnd(self.finish(state), self._usage(state))
        except (UpstreamError, SseError, httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = self._failure(exc, request.model, key, answered=answered)
        if failure is not None:
            # Raised outside the except block: the upstream's text may hold the key, so it
            # must not ride along as __context__ into tracebacks and logs.
            raise failure

    async def _check_response(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise http_error(response.status_code, await _read_some(response), response.headers)
        if response.headers.get("content-type", "").startswith("application/json"):
            # Some servers answer a streaming request with one JSON body, usually an error.
            body = await _read_some(response)
            payload = load_json(body.decode("utf-8", "replace"))
            if isinstance(payload, dict) and "error" in payload:
                raise stream_error(payload)
            raise UpstreamError("expected an SSE stream but got a JSON body", permanent=True)

    def _usage(self, state: CallState) -> Usage:
        inp, out = state.input_tokens, state.output_tokens
        return Usage(
            input_tokens=estimate_prompt_tokens(state.request.messages) if inp is None else inp,
            output_tokens=tokens_for_chars(state.chars_out) if out is None else out,
            estimated=inp is None or out is None,
            reported_cost=state.reported_cost,
        )

    # --- errors ---------------------------------------------------------------------------

    def _failure(
        self, exc: Exception, model: str, key: ApiKey | None, *, answered: bool
    ) -> ProviderError:
        secrets = (key.secret,) if key is not None else ()
        cls: type[ProviderError] = ProviderError
        status: int | None = None
        retry_after: float | None = None
        cause: Exception | None = exc
        if isinstance(exc, UpstreamError):
            message, permanent = exc.message, exc.permanent
            status, retry_after = exc.status, exc.retry_after
            cls = TruncatedStream if exc.truncated else ProviderError
            cause = None
        elif isinstance(exc, SseError):
            message, permanent = f"unreadable event stream: {exc}", True
        elif isinstance(exc, httpx.InvalidURL | httpx.UnsupportedProtocol):
            message, permanent = f"invalid base URL {self.base_url!r}: {exc}", True
        elif isinstance(exc, httpx.ConnectTimeout):
            message, permanent = f"could not connect within {self.timeouts.connect}s", False
        elif isinstance(exc, httpx.ConnectError):
            # A transport may mark its refusal final (the workbench's SSRF guard does):
            # asking again would be refused again.
            permanent = bool(getattr(exc, "permanent", False))
            message = f"cannot connect to {self.base_url}: {exc or 'refused'}"
        elif isinstance(exc, httpx.DecodingError):
            message, permanent = f"undecodable response body: {exc}", True
        elif isinstance(exc, httpx.TransportError | httpx.StreamError) and answered:
            message, permanent = f"connection lost mid-stream: {exc or type(exc).__name__}", False
            cls = TruncatedStream
        else:
            message, permanent = f"request failed: {exc or type(exc).__name__}", False
        error = cls(
            clip(redact(message, secrets)),
            provider=self.name,
            model=model,
            permanent=permanent,
            status=status,
            retry_after=retry_after,
        )
        error.__cause__ = cause
        return error

    # --- model list -------------------------------------------------------------------------

    async def list_models(self, key: ApiKey | None) -> list[str]:
        ids: set[str] = set()
        failure: ProviderError | None = None
        headers = {"accept": "application/json", **self.extra_headers, **self.auth_headers(key)}
        try:
            async with asyncio.timeout(self.timeouts.connect + self.timeouts.first_token):
                cursor: str | None = None
                for _ in range(MAX_MODEL_PAGES):
                    url, params = self.models_page(cursor)
                    response = await self.client.get(
                        url, params=params, headers=headers, timeout=self._http_timeout
                    )
                    if response.status_code != 200:
                        raise http_error(response.status_code, response.content, response.headers)
                    page, cursor = self.parse_models(load_json(response.text))
                    ids.update(page)
                    if not cursor:
                        break
        except TimeoutError:
            failure = ProviderError(
                "no model list within the time allowed",
                provider=self.name,
                model=LIST_MODELS,
                permanent=False,
            )
        except (UpstreamError, httpx.HTTPError, httpx.InvalidURL) as exc:
            failure = self._failure(exc, LIST_MODELS, key, answered=False)
        if failure is not None:
            raise failure
        return sorted(ids)


async def _read_some(response: httpx.Response, limit: int = MAX_ERROR_BODY) -> bytes:
    """Up to ``limit`` bytes of a body that may be huge or endless."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        parts.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(parts)[:limit]


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    try:
        async with asyncio.timeout(DRAIN_S):
            async for _ in chunks:
                pass
    except (TimeoutError, httpx.HTTPError):
        pass


def split_system(messages: tuple[Message, ...]) -> tuple[str | None, list[tuple[str, str]]]:
    """System text apart (joined), the rest with consecutive same-role turns merged.

    Anthropic and Gemini take the system prompt outside the turns and expect turns to
    alternate; merging keeps every word while satisfying both.
    """
    system = [m.content for m in messages if m.role == "system"]
    turns: list[tuple[str, str]] = []
    for m in messages:
        if m.role == "system":
            continue
        if turns and turns[-1][0] == m.role:
            turns[-1] = (m.role, f"{turns[-1][1]}\n\n{m.content}")
        else:
            turns.append((m.role, m.content))
    return ("\n\n".join(system) if system else None), turns
