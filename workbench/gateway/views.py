"""``/v1/models``, ``/v1/chat/completions`` (OpenAI format) and ``/anthropic/v1/messages``
(Anthropic format): async views under daphne, thin over ``services`` and ``flows``.

A streamed response starts only once the first piece of the answer exists (or the run ended),
so a request that fails outright still gets a proper status instead of a 200 with an error in
its stream. When the client goes away, the run is cancelled.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from workbench.gateway import services
from workbench.gateway.errors import GatewayError
from workbench.gateway.flows import Flow, FusionFlow, SingleFlow
from workbench.gateway.inputs import ChatInput, anthropic_input, body_json, openai_input
from workbench.tokens.models import ApiToken

log = logging.getLogger(__name__)

_END = object()


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


async def _authenticate(raw: str) -> ApiToken:
    token = await sync_to_async(services.token_for)(raw)
    await sync_to_async(services.rate_check)(token)
    return token


def _base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


async def _open(request: HttpRequest, token: ApiToken, chat: ChatInput) -> Flow:
    target = await sync_to_async(services.target_resolve)(token, chat.model)
    base = _base_url(request)
    if isinstance(target, services.FusionTarget):
        run = await sync_to_async(services.fusion_start)(
            token=token, pool=target.pool, messages=chat.messages
        )
        return FusionFlow(token=token, run_id=str(run.pk), base_url=base)
    call = await sync_to_async(services.single_open)(
        token=token, target=target, messages=chat.messages, max_tokens=chat.max_tokens
    )
    return SingleFlow(
        token=token,
        call=call,
        model=target.model,
        messages=chat.messages,
        temperature=chat.temperature,
        max_tokens=chat.max_tokens,
        base_url=base,
    )


async def _cancel_quietly(flow: Flow) -> None:
    try:
        await asyncio.shield(flow.cancel())
    except Exception:  # the client is gone: nobody to tell, but the log should know
        log.exception("could not cancel run %s after the client left", flow.run_id)


async def _collect(flow: Flow) -> str:
    try:
        return "".join([piece async for piece in flow.deltas()])
    except asyncio.CancelledError:  # the client disconnected
        await _cancel_quietly(flow)
        raise


async def _peek(flow: Flow) -> tuple[AsyncIterator[str], Any]:
    iterator = flow.deltas().__aiter__()
    try:
        first = await anext(iterator, _END)
    except asyncio.CancelledError:
        await _cancel_quietly(flow)
        raise
    return iterator, first


def _stream_response(
    events: AsyncIterator[str], flow: Flow, *, content_type: str = "text/event-stream"
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type=content_type)
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    response["X-Fusion-Run-Id"] = flow.run_id
    return response


async def _guarded(
    flow: Flow, first: Any, iterator: AsyncIterator[str], on_error: Callable[[GatewayError], str]
) -> AsyncIterator[tuple[str, str | None]]:
    """(kind, text): "delta" pieces, then "end"; an error mid-stream becomes one error frame."""
    finished = False
    try:
        if first is not _END:
            yield "delta", first
            async for piece in iterator:
                yield "delta", piece
        finished = True
        yield "end", None
    except GatewayError as exc:
        finished = True
        yield "error", on_error(exc)
    finally:
        if not finished:  # the client went away mid-stream
            await _cancel_quietly(flow)


def _finish(flow: Flow, openai: bool) -> str:
    reason = flow.finish_reason if isinstance(flow, SingleFlow) else "stop"
    long = reason in ("length", "max_tokens")
    if openai:
        return "length" if long else "stop"
    return "max_tokens" if long else "end_turn"


# --- OpenAI ------------------------------------------------------------------------------------


def _openai_error(exc: GatewayError) -> JsonResponse:
    return JsonResponse(exc.openai_body(), status=exc.status)


def _openai_usage(outcome: dict[str, Any]) -> dict[str, int]:
    i, o = outcome["input_tokens"], outcome["output_tokens"]
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


@csrf_exempt
async def openai_models(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return _openai_error(GatewayError(405, "Use GET."))
    try:
        token = await _authenticate(_bearer(request))
    except GatewayError as exc:
        return _openai_error(exc)
    rows = await sync_to_async(services.models_for)(token)
    return JsonResponse({"object": "list", "data": rows})


@csrf_exempt
async def openai_chat(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _openai_error(GatewayError(405, "Use POST."))
    try:
        token = await _authenticate(_bearer(request))
        chat = openai_input(body_json(request.body))
        flow = await _open(request, token, chat)
    except GatewayError as exc:
        return _openai_error(exc)
    ident = f"chatcmpl-{flow.run_id.replace('-', '')}"
    created = int(time.time())
    if not chat.stream:
        try:
            text = await _collect(flow)
        except GatewayError as exc:
            return _openai_error(exc)
        outcome = flow.outcome or {}
        body = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": chat.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": _finish(flow, openai=True),
                }
            ],
            "usage": _openai_usage(outcome),
            "fusion": outcome.get("fusion"),
        }
        response = JsonResponse(body)
        response["X-Fusion-Run-Id"] = flow.run_id
        return response
    try:
        iterator, first = await _peek(flow)
    except GatewayError as exc:
        return _openai_error(exc)

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": chat.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if chat.include_usage:
            data["usage"] = None
        data.update(extra)
        return f"data: {json.dumps(data)}\n\n"

    async def events() -> AsyncIterator[str]:
        yield chunk({"role": "assistant", "content": ""})
        async for kind, value in _guarded(flow, first, iterator, _sse_openai_error):
            if kind == "delta":
                yield chunk({"content": value})
            elif kind == "error":
                yield value  # type: ignore[misc]
                return
        outcome = flow.outcome or {}
        yield chunk({}, _finish(flow, openai=True), fusion=outcome.get("fusion"))
        if chat.include_usage:
            data = {
                "id": ident,
                "object": "chat.completion.chunk",
                "created": created,
                "model": chat.model,
                "system_fingerprint": None,
                "choices": [],
                "usage": _openai_usage(outcome),
            }
            yield f"data: {json.dumps(data)}\n\n"
        yield "data: [DONE]\n\n"

    return _stream_response(events(), flow)


def _sse_openai_error(exc: GatewayError) -> str:
    return f"data: {json.dumps(exc.openai_body())}\n\n"


# --- Anthropic ---------------------------------------------------------------------------------


def _anthropic_error(exc: GatewayError) -> JsonResponse:
    return JsonResponse(exc.anthropic_body(), status=exc.status)


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps({'type': event, **data})}\n\n"


def _sse_anthropic_error(exc: GatewayError) -> str:
    return f"event: error\ndata: {json.dumps(exc.anthropic_body())}\n\n"


@csrf_exempt
async def anthropic_messages(request: HttpRequest) -> HttpResponse:
    if request.method != "POST":
        return _anthropic_error(GatewayError(405, "Use POST."))
    try:
        token = await _authenticate(request.headers.get("x-api-key", "") or _bearer(request))
        chat = anthropic_input(body_json(request.body))
        flow = await _open(request, token, chat)
    except GatewayError as exc:
        return _anthropic_error(exc)
    ident = f"msg_{uuid.UUID(flow.run_id).hex}"
    if not chat.stream:
        try:
            text = await _collect(flow)
        except GatewayError as exc:
            return _anthropic_error(exc)
        outcome = flow.outcome or {}
        body = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": chat.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": _finish(flow, openai=False),
            "stop_sequence": None,
            "usage": {
                "input_tokens": outcome.get("input_tokens", 0),
                "output_tokens": outcome.get("output_tokens", 0),
            },
            "fusion": outcome.get("fusion"),
        }
        response = JsonResponse(body)
        response["X-Fusion-Run-Id"] = flow.run_id
        return response
    try:
        iterator, first = await _peek(flow)
    except GatewayError as exc:
        return _anthropic_error(exc)

    async def events() -> AsyncIterator[str]:
        message = {
            "id": ident,
            "type": "message",
            "role": "assistant",
            "model": chat.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        yield _sse("message_start", {"message": message})
        yield _sse(
            "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
        )
        async for kind, value in _guarded(flow, first, iterator, _sse_anthropic_error):
            if kind == "delta":
                yield _sse(
                    "content_block_delta",
                    {"index": 0, "delta": {"type": "text_delta", "text": value}},
                )
            elif kind == "error":
                yield value  # type: ignore[misc]
                return
        outcome = flow.outcome or {}
        yield _sse("content_block_stop", {"index": 0})
        yield _sse(
            "message_delta",
            {
                "delta": {"stop_reason": _finish(flow, openai=False), "stop_sequence": None},
                "usage": {
                    "input_tokens": outcome.get("input_tokens", 0),
                    "output_tokens": outcome.get("output_tokens", 0),
                },
                "fusion": outcome.get("fusion"),
            },
        )
        yield _sse("message_stop", {})

    return _stream_response(events(), flow)
