"""A loopback HTTP server that plays OpenAI, Anthropic and Gemini, scripted per model.

    async with Upstream() as up:
        up.script("m", Script(status=429, retry_after="1"), Script(text="ok"))  # 429, then ok
        provider = OpenAIProvider(name="t", base_url=f"{up.url}/v1", client=client)

Base URLs: ``{url}/v1`` for OpenAI-compatible, ``{url}`` for Anthropic and Gemini. A model
without a registered script may carry one in its name (see ``fusion.testing.scripts``); any
other model gets a deterministic echo. Every request is recorded (unless ``record=False``),
and so is every client that went away mid-answer (``disconnects``, with the time).
From sync code or other processes: ``Upstream().start_in_thread()`` or
``python -m fusion.testing.upstream --port 8765`` (scripts then go through ``POST
/_upstream/script`` or model names). For latency benchmarks prefer the separate process: a
thread in the measured process competes with it for the GIL (up to 5 ms per switch).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import lru_cache
from types import TracebackType
from typing import Any

from aiohttp import web

from fusion.testing.scripts import Script, answer_pieces, script_from_model
from fusion.testing.wire import AnthropicWire, GeminiWire, OpenAIWire, Payload, Wire

MODELS_KEY = "*models*"  # script this "model" to make the model-list endpoints fail
DEFAULT_MODELS = ("up-small", "up-large")
_DEFAULT = Script()
_OPENAI, _ANTHROPIC, _GEMINI = OpenAIWire(), AnthropicWire(), GeminiWire()


@dataclass(frozen=True)
class Disconnect:
    """A client that went away while its answer was still being served."""

    model: str
    peer: str
    at: float  # time.monotonic() when the server saw the connection close


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    url: str  # path and query string, as received
    headers: dict[str, str]  # lower-case names
    body: Any
    protocol: str
    model: str
    peer: str  # the client's host:port, to tell whether connections were reused


class Upstream:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record: bool = True,
        models: Iterable[str] = DEFAULT_MODELS,
        valid_keys: Iterable[str] | None = None,
    ) -> None:
        """``valid_keys``: when given, any other key (or none) gets a 401."""
        self.host = host
        self.port = port
        self.record = record
        self.models = list(models)
        self.valid_keys = set(valid_keys) if valid_keys is not None else None
        self.requests: list[RecordedRequest] = []
        self.disconnects: list[Disconnect] = []  # recorded too (unless ``record=False``)
        self._calls: Counter[str] = Counter()
        self._scripts: dict[str, list[Script]] = {}
        # Scripts may be registered from another thread than the server's.
        self._lock = threading.Lock()
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- scripting and inspection ---------------------------------------------------------

    def script(self, model: str, *scripts: Script) -> None:
        """Answer successive calls to ``model`` with these; the last one repeats."""
        if not scripts:
            raise ValueError("give at least one Script")
        with self._lock:
            self._scripts[model] = list(scripts)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._calls.clear()
            self.requests.clear()
            self.disconnects.clear()

    def calls(self, model: str | None = None) -> int:
        """How many calls ``model`` (or any model, with None) has received."""
        return self._calls[model] if model is not None else sum(self._calls.values())

    def requests_for(self, model: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.model == model]

    def _next_script(self, model: str) -> Script:
        with self._lock:
            queue = self._scripts.get(model)
            if queue:
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return script_from_model(model) or _DEFAULT

    # --- life cycle -----------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._openai)
        app.router.add_post("/v1/messages", self._anthropic)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1beta/models/{spec}", self._gemini)
        app.router.add_get("/v1beta/models", self._models)
        app.router.add_post("/_upstream/script", self._control_script)
        app.router.add_post("/_upstream/reset", self._control_reset)
        app.router.add_get("/_upstream/requests", self._control_requests)
        return app

    async def start(self) -> str:
        # handler_cancellation: a handler stuck in "hang" ends when its client goes away.
        runner = web.AppRunner(
            self.app(), handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, backlog=1024)
        await site.start()
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Upstream:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def start_in_thread(self) -> str:
        """Serve from a daemon thread with its own event loop; returns the base URL."""
        ready = threading.Event()
        failures: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._thread_loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:  # handed to the starting thread
                failures.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self.stop())
                loop.close()

        self._thread = threading.Thread(target=run, name="fusion-upstream", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the upstream did not start within 10s")
        if failures:
            raise failures[0]
        return self.url

    def stop_thread(self) -> None:
        if self._thread_loop is not None and self._thread is not None:
            self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
            self._thread.join(5)
            self._thread = self._thread_loop = None

    # --- protocol endpoints ---------------------------------------------------------------------

    async def _openai(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        auth = request.headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else None
        messages = body.get("messages") or []
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        return await self._serve(
            request, _OPENAI, str(body.get("model", "")), body, key, _texts(messages), max_tokens
        )

    async def _anthropic(self, request: web.Request) -> web.StreamResponse:
        if "anthropic-version" not in request.headers:
            return _error(_ANTHROPIC, 400, "anthropic-version: header is required")
        body = await _json(request)
        texts = _texts(body.get("messages") or [])
        system = body.get("system")
        if isinstance(system, str):
            texts.insert(0, system)
        key = request.headers.get("x-api-key")
        return await self._serve(
            request,
            _ANTHROPIC,
            str(body.get("model", "")),
            body,
            key,
            texts,
            body.get("max_tokens"),
        )

    async def _gemini(self, request: web.Request) -> web.StreamResponse:
        model, _, action = request.match_info["spec"].rpartition(":")
        if action != "streamGenerateContent" or request.query.get("alt") != "sse":
            return _error(_GEMINI, 400, "only streamGenerateContent?alt=sse is served")
        body = await _json(request)
        texts = [
            str(part.get("text", ""))
            for content in body.get("contents") or []
            for part in content.get("parts") or []
        ]
        system = body.get("systemInstruction")
        if isinstance(system, dict):
            texts[:0] = [str(p.get("text", "")) for p in system.get("parts") or []]
        config = body.get("generationConfig") or {}
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        return await self._serve(
            request, _GEMINI, model, body, key, texts, config.get("maxOutputTokens")
        )

    async def _models(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/v1beta"):
            wire: Wire = _GEMINI
            key = request.headers.get("x-goog-api-key") or request.query.get("key")
        elif "anthropic-version" in request.headers or "x-api-key" in request.headers:
            wire, key = _ANTHROPIC, request.headers.get("x-api-key")
        else:
            auth = request.headers.get("authorization", "")
            wire, key = _OPENAI, (auth[7:] if auth.lower().startswith("bearer ") else None)
        self._note(request, wire, MODELS_KEY, None)
        refusal = self._refusal(wire, self._next_script(MODELS_KEY), key)
        if refusal is not None:
            return refusal
        return web.json_response(wire.models(self.models))

    # --- streaming ------------------------------------------------------------------------------

    def _note(self, request: web.Request, wire: Wire, model: str, body: Any) -> None:
        self._calls[model] += 1
        if self.record:
            headers = {k.lower(): v for k, v in request.headers.items()}
            self.requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.path,
                    url=request.path_qs,
                    headers=headers,
                    body=body,
                    protocol=wire.name,
                    model=model,
                    peer=_peer(request),
                )
            )

    def _gone(self, model: str, peer: str) -> None:
        if self.record:
            self.disconnects.append(Disconnect(model, peer, time.monotonic()))

    def _refusal(self, wire: Wire, script: Script, key: str | None) -> web.Response | None:
        if self.valid_keys is not None and key not in self.valid_keys:
            suffix = f": {key}" if script.echo_key and key else ""
            return _error(wire, 401, f"invalid API key{suffix}")
        if script.status != 200 or script.fail == "json_error":
            suffix = f" (key {key})" if script.echo_key and key else ""
            return _error(wire, script.status, script.error_message + suffix, script.retry_after)
        return None

    async def _serve(
        self,
        request: web.Request,
        wire: Wire,
        model: str,
        body: Any,
        key: str | None,
        texts: list[str],
        max_tokens: Any,
    ) -> web.StreamResponse:
        self._note(request, wire, model, body)
        peer = _peer(request)  # the transport is gone by the time the client is
        try:
            return await self._respond(request, wire, model, key, texts, max_tokens, peer)
        except asyncio.CancelledError:
            # handler_cancellation: the client closed the connection while we waited.
            self._gone(model, peer)
            raise

    async def _respond(
        self,
        request: web.Request,
        wire: Wire,
        model: str,
        key: str | None,
        texts: list[str],
        max_tokens: Any,
        peer: str,
    ) -> web.StreamResponse:
        try:
            script = self._next_script(model)
        except ValueError as exc:
            return _error(wire, 400, str(exc))
        if script.fail == "hang_headers":
            await _forever()
        if script.status != 200 and script.ttft_s:
            await asyncio.sleep(script.ttft_s)
        refusal = self._refusal(wire, script, key)
        if refusal is not None:
            return refusal
        pieces = answer_pieces(script, model, texts[-1] if texts else "")
        finish = script.finish_reason or wire.stop
        if isinstance(max_tokens, int) and 0 < max_tokens < len(pieces):
            pieces, finish = pieces[:max_tokens], script.finish_reason or wire.length
        usage = (-(-sum(map(len, texts)) // 4), len(pieces)) if script.usage else None
        response = web.StreamResponse(
            headers={
                "content-type": "text/event-stream; charset=utf-8",
                "cache-control": "no-cache",
            }
        )
        await response.prepare(request)
        out = _Out(response, script, script.line_end or wire.line_end)
        try:
            for payload in wire.preamble(model, usage[0] if usage else None):
                await out.send(payload)
            await out.wait(script.ttft_s)
            endless = script.fail == "endless"
            delay = max(script.delay_s, 0.001) if endless else script.delay_s
            sent = 0
            while endless or sent < len(pieces):
                if script.fail and not endless and sent == script.fail_after:
                    return await _fail(request, response, out, wire, model, script, key)
                if sent:
                    await out.wait(delay)
                if script.stamp:  # the send time, so a client can measure latency
                    await out.send(wire.token(model, f"<{time.time():.6f}>"))
                else:
                    piece = pieces[sent % len(pieces)] if pieces else "w "
                    await out.write(
                        _token_frame(wire, model, piece, out.line_end, script.multiline)
                    )
                sent += 1
            final = wire.final(model, finish, usage, script.cost)
            if script.fail == "truncate" and script.fail_after > len(pieces):
                final = final[:-1]  # everything but the end marker
            elif script.fail:
                return await _fail(request, response, out, wire, model, script, key)
            for payload in final:
                await out.send(payload)
            await out.flush()
            await response.write_eof()
        except ConnectionError:
            self._gone(model, peer)  # the client went away; nothing left to do
        return response

    # --- control channel (for other processes) ------------------------------------------------

    async def _control_script(self, request: web.Request) -> web.Response:
        body = await _json(request)
        try:
            scripts = [Script.from_dict(s) for s in body.get("scripts") or [{}]]
        except (TypeError, ValueError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        self.script(str(body.get("model", "")), *scripts)
        return web.json_response({"ok": True})

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(r) for r in self.requests])


@lru_cache(maxsize=4096)
def _token_frame(wire: Wire, model: str, piece: str, line_end: str, multiline: bool) -> bytes:
    """The framed bytes of one token, kept: at hundreds of streams (benchmarks) the upstream
    shares the machine with what it measures, so it must not spend a JSON encode per token."""
    return _frame(wire.token(model, piece), line_end, multiline)


def _frame(payload: Payload, line_end: str, multiline: bool) -> bytes:
    event, data = payload
    if isinstance(data, str):
        text = data
    elif multiline:
        text = json.dumps(data, indent=1, ensure_ascii=False)
    else:
        # Raw UTF-8, so that chunking can split multi-byte characters.
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    lines = "".join(f"data: {line}{line_end}" for line in text.split("\n"))
    head = f"event: {event}{line_end}" if event else ""
    return f"{head}{lines}{line_end}".encode()


class _Out:
    """Frames payloads as SSE and writes them, split into the script's chunk sizes."""

    def __init__(self, response: web.StreamResponse, script: Script, line_end: str) -> None:
        self.response = response
        self.script = script
        self.line_end = line_end
        self.sizes = script.chunk_sizes
        self.turn = 0
        self.pending = bytearray()

    def frame(self, payload: Payload) -> bytes:
        return _frame(payload, self.line_end, self.script.multiline)

    async def send(self, payload: Payload) -> None:
        await self.write(self.frame(payload))

    async def write(self, data: bytes) -> None:
        if not self.sizes:
            await self.response.write(data)
            return
        self.pending += data
        while True:
            size = self.sizes[self.turn % len(self.sizes)]
            if len(self.pending) < size:
                return
            piece = bytes(self.pending[:size])
            del self.pending[:size]
            self.turn += 1
            await self.response.write(piece)

    async def flush(self) -> None:
        if self.pending:
            piece = bytes(self.pending)
            self.pending.clear()
            await self.response.write(piece)

    async def wait(self, seconds: float) -> None:
        """Flush, then wait, sending keep-alive comments meanwhile if the script asks."""
        await self.flush()
        if seconds <= 0:
            return
        every = self.script.keepalive_s
        if every <= 0:
            await (asyncio.sleep(seconds) if seconds != float("inf") else _forever())
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        comment = f": OPENROUTER PROCESSING{self.line_end}{self.line_end}".encode()
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(every, left))
            await self.write(comment)
            await self.flush()


async def _fail(
    request: web.Request,
    response: web.StreamResponse,
    out: _Out,
    wire: Wire,
    model: str,
    script: Script,
    key: str | None,
) -> web.StreamResponse:
    if script.fail == "stream_error":
        message = script.error_message + (f" (key {key})" if script.echo_key and key else "")
        await out.send(wire.stream_error(model, script.error_status, message))
    elif script.fail == "malformed":
        event = "content_block_delta" if wire is _ANTHROPIC else None
        # A careless server may put the key into the very chunk a client will quote back.
        echoed = f'"key {key}", ' if script.echo_key and key else ""
        await out.send((event, '{"choices": [' + echoed + '{"delta": '))
    elif script.fail == "hang":
        await out.wait(float("inf"))
    await out.flush()
    if script.fail == "disconnect":
        if request.transport is not None:
            request.transport.abort()  # no terminating chunk: the body is visibly incomplete
        return response
    await response.write_eof()
    return response


def _error(wire: Wire, status: int, message: str, retry_after: str | None = None) -> web.Response:
    headers = {"retry-after": retry_after} if retry_after is not None else None
    # With status 200 (fail="json_error") the body still describes a server-side failure.
    body = wire.error_body(status if status != 200 else 500, message)
    return web.json_response(body, status=status, headers=headers)


def _peer(request: web.Request) -> str:
    transport = request.transport
    peer = transport.get_extra_info("peername") if transport is not None else None
    return f"{peer[0]}:{peer[1]}" if peer else ""


async def _forever() -> None:
    while True:
        await asyncio.sleep(3600)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _texts(messages: list[Any]) -> list[str]:
    texts = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):  # content parts
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        texts.append(str(content or ""))
    return texts


async def _serve_forever(host: str, port: int, record: bool) -> None:
    upstream = Upstream(host=host, port=port, record=record)
    url = await upstream.start()
    print(f"fusion upstream listening on {url}", flush=True)
    try:
        await _forever()
    finally:
        await upstream.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--record", action="store_true", help="keep every request in memory")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_forever(args.host, args.port, args.record))


if __name__ == "__main__":
    main()
