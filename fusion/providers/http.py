"""What the wire-protocol providers share: one pooled HTTP client, SSE streaming, timeouts,
error classification and key redaction. Subclasses only build requests and read events.
"""

from __future__ import annotations

import asyncio
import json
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.base import Provider, Timeouts
from fusion.providers.classify import UpstreamError, clip, http_error, load_json, stream_error
from fusion.providers.transport import (
    AiohttpClient,
    ConnectGuard,
    HttpClient,
    HttpRequest,
    HttpResponse,
    RequestCheck,
    TransportError,
    as_client,
)
from fusion.redact import redact
from fusion.sse import SseDecoder, SseError, SseEvent
from fusion.tokens import estimate_prompt_tokens, tokens_for_chars
from fusion.types import ApiKey, ChatRequest, Message, StreamEnd, StreamItem, TextDelta, Usage

MAX_ERROR_BODY = 64 * 1024
# After the end marker only the chunked-encoding trailer should follow; reading it keeps the
# connection reusable, but a server that holds the line open must not delay the answer.
DRAIN_S = 0.25
MAX_MODEL_PAGES = 20
MAX_MODEL_LIST = 32 * 1024 * 1024  # bytes of one page of a model list
LIST_MODELS = "(list models)"


def make_client(
    *,
    trust_env: bool = False,
    proxy: str | None = None,
    guard: ConnectGuard | None = None,
    check_request: RequestCheck | None = None,
) -> AiohttpClient:
    """A long-lived pooled client to share between providers on one event loop.

    Make it inside the loop that will use it and close it there (``async with``): it belongs
    to that loop. fusion reads no proxy from the environment unless ``trust_env``; pass
    ``proxy`` explicitly. ``guard`` and ``check_request``: see ``fusion.providers.transport``.
    """
    return AiohttpClient(trust_env=trust_env, proxy=proxy, guard=guard, check_request=check_request)


@dataclass(frozen=True, slots=True)
class HttpCall:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


class StreamState:
    """What one streamed response has told so far; providers fill it from its events."""

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


def truncated(state: StreamState) -> UpstreamError:
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
        client: HttpClient | httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``client``: shared by many providers and closed by its owner; an
        ``httpx.AsyncClient`` (with its own transport, e.g. an SSRF guard) is wrapped. Without
        one, the provider makes its own per event loop (see ``client``)."""
        super().__init__(name=name, timeouts=timeouts)
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        if not self.base_url:
            raise ValueError(f"{type(self).__name__} needs a base_url")
        self.extra_headers = dict(headers or {})
        self._client = None if client is None else as_client(client)
        # Without a client given, one per event loop: a client belongs to the loop it was
        # made in, and a provider may outlive a loop (two asyncio.run calls in a row).
        self._own_clients: dict[asyncio.AbstractEventLoop, HttpClient] = {}

    @property
    def client(self) -> HttpClient:
        """The client given to this provider, or else this provider's own for the running loop.

        Given a client, its owner closes it. Otherwise ``aclose`` (or ``async with``) closes
        the running loop's own client; pass one shared client to many providers instead.
        """
        if self._client is not None:
            return self._client
        loop = asyncio.get_running_loop()
        client = self._own_clients.get(loop)
        if client is None:
            # A loop that ended without aclose() took its connections with it: forget them.
            for dead in [other for other in self._own_clients if other.is_closed()]:
                del self._own_clients[dead]
            client = self._own_clients[loop] = make_client()
        return client

    async def aclose(self) -> None:
        """Close this provider's own client of the running loop; a given client is its owner's."""
        client = self._own_clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def __aenter__(self) -> HttpProvider:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- what subclasses provide -------------------------------------------------------

    @abstractmethod
    def auth_headers(self, key: ApiKey | None) -> dict[str, str]: ...

    @abstractmethod
    def stream_call(self, request: ChatRequest, key: ApiKey | None) -> HttpCall: ...

    @abstractmethod
    def on_event(self, event: SseEvent, state: StreamState) -> str | None:
        """Update ``state`` from one event; return answer text, if any; raise UpstreamError."""

    @abstractmethod
    def models_page(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        """URL and query parameters of one page of the model list."""

    @abstractmethod
    def parse_models(self, payload: Any) -> tuple[list[str], str | None]:
        """Model ids on one page and the cursor of the next, if any."""

    def finish(self, state: StreamState) -> str:
        """The finish reason of a stream that has ended; raise if it was cut short."""
        if state.finish_reason is None:
            raise truncated(state)
        return state.finish_reason

    # --- streaming ----------------------------------------------------------------------

    async def stream(self, request: ChatRequest, key: ApiKey | None) -> AsyncIterator[StreamItem]:
        t = self.timeouts
        # Silence is timed only while waiting for the upstream, never across a yield, so that
        # a deadline cannot fire while the consumer is busy with an item.
        watch = _Silence(t.first_token, t.idle, t.total)
        watch.wait()
        state = StreamState(request)
        answered = False
        failure: ProviderError | None = None
        try:
            call = self.stream_call(request, key)
            body = encode_json(call.body)
            post = HttpRequest("POST", call.url, call.headers, body, None, t.connect)
            async with self.client.open(post) as response:
                answered = True
                await self._check_response(response)
                decoder = SseDecoder()
                on_event = self.on_event
                chunks = aiter(response)
                async for chunk in chunks:
                    for event in decoder.feed(chunk):
                        text = on_event(event, state)
                        if text:
                            state.chars_out += len(text)
                            watch.got()
                            yield TextDelta(text)
                            watch.wait()
                        if state.done:
                            break
                    if state.done:
                        if not response.complete:
                            await _drain(chunks)
                        break
                decoder.close()
            end = StreamEnd(self.finish(state), self._usage(state))
        except (UpstreamError, SseError, TransportError) as exc:
            failure = self._failure(exc, request.model, key, answered=answered)
        except asyncio.CancelledError:
            if not watch.expired():
                raise
            failure = self._timeout_error(request.model, watch.first, watch.total)
        finally:
            watch.stop()
        if failure is not None:
            # Raised outside the except block: the upstream's text may hold the key, so it
            # must not ride along as __context__ into tracebacks and logs.
            raise failure
        yield end

    def _timeout_error(self, model: str, first: bool, total: bool) -> ProviderError:
        t = self.timeouts
        if total:
            message = f"no complete answer within {t.total}s (total timeout)"
        elif first:
            message = f"no first token within {t.first_token}s"
        else:
            message = f"no token for {t.idle}s (idle timeout)"
        return ProviderError(message, provider=self.name, model=model, permanent=False)

    async def _check_response(self, response: HttpResponse) -> None:
        if response.status != 200:
            raise http_error(response.status, await _read_some(response), response.headers)
        if response.headers.get("content-type", "").startswith("application/json"):
            # Some servers answer a streaming request with one JSON body, usually an error.
            body = await _read_some(response)
            payload = load_json(body.decode("utf-8", "replace"))
            if isinstance(payload, dict) and "error" in payload:
                raise stream_error(payload)
            raise UpstreamError("expected an SSE stream but got a JSON body", permanent=True)

    def _usage(self, state: StreamState) -> Usage:
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
        elif not isinstance(exc, TransportError):
            message, permanent = f"request failed: {exc or type(exc).__name__}", False
        elif exc.kind == "url":
            message, permanent = f"invalid base URL {self.base_url!r}: {exc}", True
        elif exc.kind == "connect_timeout":
            message, permanent = f"could not connect within {self.timeouts.connect}s", False
        elif exc.kind == "connect":
            # A transport may mark its refusal final (the workbench's SSRF guard does):
            # asking again would be refused again.
            message, permanent = (
                f"cannot connect to {self.base_url}: {exc or 'refused'}",
                exc.permanent,
            )
        elif exc.kind == "protocol":
            message, permanent = f"undecodable response body: {exc}", True
        elif answered:
            message, permanent = f"connection lost mid-stream: {exc}", False
            cls = TruncatedStream
        else:
            message, permanent = f"request failed: {exc}", False
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
                    get = HttpRequest("GET", url, headers, None, params, self.timeouts.connect)
                    async with self.client.open(get) as response:
                        body = await _read_some(response, MAX_MODEL_LIST)
                    if response.status != 200:
                        raise http_error(response.status, body, response.headers)
                    page, cursor = self.parse_models(load_json(body.decode("utf-8", "replace")))
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
        except (UpstreamError, TransportError) as exc:
            failure = self._failure(exc, LIST_MODELS, key, answered=False)
        if failure is not None:
            raise failure
        return sorted(ids)


def encode_json(body: Any) -> bytes:
    """A request body as httpx's ``json=`` would send it."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()


async def _read_some(response: HttpResponse, limit: int = MAX_ERROR_BODY) -> bytes:
    """Up to ``limit`` bytes of a body that may be huge or endless."""
    parts: list[bytes] = []
    size = 0
    async for chunk in response:
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
    except (TimeoutError, TransportError):
        pass


class _Silence:
    """The first-token, idle and total timeouts of one stream, on one lazily moved timer.

    ``asyncio.timeout`` per item would arm and cancel a timer for every token (a third of a
    stream's CPU at hundreds of streams). Here a token only notes the time; the one timer,
    when it fires, moves itself to the current deadline, and cancels the task only if the
    deadline has really passed while the stream was waiting for the upstream.
    """

    __slots__ = (
        "_cancelling",
        "_deadline",
        "_handle",
        "_loop",
        "_task",
        "_waiting",
        "fired",
        "first",
        "first_token",
        "idle",
        "total",
        "total_at",
    )

    def __init__(self, first_token: float, idle: float, total: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._cancelling = 0 if self._task is None else self._task.cancelling()
        self.first_token, self.idle = first_token, idle
        self.total_at = self._loop.time() + total
        self._deadline = min(self.total_at, self._loop.time() + first_token)
        self._handle: asyncio.TimerHandle | None = None
        self._waiting = False
        self.fired = False
        self.first = True  # no item yet
        self.total = False  # the deadline that fired was the total one

    def wait(self) -> None:
        self._waiting = True
        handle = self._handle
        if handle is None or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._handle = self._loop.call_at(self._deadline, self._check)

    def got(self) -> None:
        self._waiting = False
        self.first = False
        self._deadline = min(self.total_at, self._loop.time() + self.idle)

    def _check(self) -> None:
        self._handle = None
        if not self._waiting:
            return  # the consumer has the stream; wait() re-arms
        if self._loop.time() < self._deadline:
            self._handle = self._loop.call_at(self._deadline, self._check)
            return
        if self._task is not None and not self.fired:
            self.fired = True
            self.total = self._deadline >= self.total_at
            self._task.cancel()

    def expired(self) -> bool:
        """Whether the CancelledError being handled is this timer's (and only its)."""
        if not self.fired or self._task is None:
            return False
        return self._task.uncancel() <= self._cancelling

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


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
