"""``/v1/models``, ``/v1/chat/completions`` (OpenAI format) and ``/anthropic/v1/messages``
(Anthropic format): async views under daphne, thin over ``services`` and the flows. Both chat
endpoints are one view; what differs is the request parser and the framing of the answer
(``openai_format``, ``anthropic_format``).

A streamed response starts only once the first piece of the answer exists (or the run ended),
so a request that fails outright still gets a proper status instead of a 200 with an error in
its stream. When the client goes away, the run is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from workbench.gateway import openai_format, services
from workbench.gateway.anthropic_format import AnthropicAnswer
from workbench.gateway.errors import GatewayError
from workbench.gateway.flows import Flow, FusionFlow
from workbench.gateway.inputs import ChatInput, anthropic_input, body_json, openai_input
from workbench.gateway.openai_format import OpenAIAnswer
from workbench.gateway.passthrough import PassthroughFlow, gateway_client
from workbench.tokens.models import ApiToken

log = logging.getLogger(__name__)

_END = object()
Answer = OpenAIAnswer | AnthropicAnswer


def _bearer(request: HttpRequest) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


def _base_url(request: HttpRequest) -> str:
    return f"{request.scheme}://{request.get_host()}"


# Abandoned runs being ended in the background (a reference keeps each task alive).
_abandoning: set[asyncio.Task[None]] = set()


async def _open(request: HttpRequest, token: ApiToken, chat: ChatInput) -> Flow:
    opening = asyncio.ensure_future(
        sync_to_async(services.target_open)(token=token, chat=chat, client=gateway_client())
    )
    try:
        opened = await asyncio.shield(opening)
    except asyncio.CancelledError:
        # The client left while its run was being made: once it exists, end it unstarted.
        task = asyncio.ensure_future(_abandon(opening, token))
        _abandoning.add(task)
        task.add_done_callback(_abandoning.discard)
        raise
    base = _base_url(request)
    flow: Flow
    if isinstance(opened, services.Passthrough):
        flow = PassthroughFlow(token=token, call=opened, messages=chat.messages, base_url=base)
    else:
        flow = FusionFlow(token=token, run_id=str(opened.pk), base_url=base)
    flow.start()
    return flow


async def _abandon(opening: asyncio.Future[Any], token: ApiToken) -> None:
    try:
        opened = await opening
    except GatewayError:
        return  # refused: no run was made
    # Outlives the request, whose thread-sensitive executor is gone by now: a thread of its own.
    try:
        if isinstance(opened, services.Passthrough):
            await sync_to_async(services.passthrough_abandon, thread_sensitive=False)(
                run_id=opened.run_id
            )
        else:
            await sync_to_async(services.run_cancel_for, thread_sensitive=False)(
                run_id=str(opened.pk), token=token
            )
    except Exception:
        log.exception("could not end the run of a client that left")


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


async def _frames(
    answer: Answer, flow: Flow, first: Any, iterator: AsyncIterator[str]
) -> AsyncIterator[str]:
    """The whole stream; an error after it started becomes the format's error frame."""
    finished = False
    try:
        for frame in answer.opening():
            yield frame
        try:
            if first is not _END:
                yield answer.delta(first)
                async for piece in iterator:
                    yield answer.delta(piece)
        except GatewayError as exc:
            finished = True
            yield answer.error_frame(exc)
            return
        finished = True
        for frame in answer.closing(flow.outcome or {}, flow.finish_reason):
            yield frame
    finally:
        if not finished:  # the client went away mid-stream
            await _cancel_quietly(flow)


def _with_run_id(response: HttpResponse, flow: Flow) -> HttpResponse:
    response["X-Fusion-Run-Id"] = flow.run_id
    return response


async def _chat(
    request: HttpRequest,
    answer_type: type[Answer],
    parse: Callable[[dict[str, Any]], ChatInput],
    raw_token: str,
) -> HttpResponse:
    refuse = answer_type.error_response
    if request.method != "POST":
        return refuse(GatewayError(405, "Use POST."))
    try:
        token = await sync_to_async(services.authenticate)(raw_token)
        chat = parse(body_json(request.body))  # after: a bad token is a 401 whatever the body
        flow = await _open(request, token, chat)
    except GatewayError as exc:
        return refuse(exc)
    answer = answer_type(run_id=flow.run_id, model=chat.model, include_usage=chat.include_usage)
    if not chat.stream:
        try:
            text = await _collect(flow)
        except GatewayError as exc:
            return _with_run_id(refuse(exc), flow)
        body = answer.body(text, flow.outcome or {}, flow.finish_reason)
        return _with_run_id(JsonResponse(body), flow)
    try:
        iterator, first = await _peek(flow)
    except GatewayError as exc:
        return _with_run_id(refuse(exc), flow)
    response = StreamingHttpResponse(
        _frames(answer, flow, first, iterator), content_type="text/event-stream"
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return _with_run_id(response, flow)


@csrf_exempt
async def openai_models(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return openai_format.error_response(GatewayError(405, "Use GET."))
    try:
        token = await sync_to_async(services.authenticate)(_bearer(request))
    except GatewayError as exc:
        return openai_format.error_response(exc)
    rows = await sync_to_async(services.models_for)(token)
    return JsonResponse({"object": "list", "data": rows})


@csrf_exempt
async def openai_chat(request: HttpRequest) -> HttpResponse:
    return await _chat(request, OpenAIAnswer, openai_input, _bearer(request))


@csrf_exempt
async def anthropic_messages(request: HttpRequest) -> HttpResponse:
    raw = request.headers.get("x-api-key", "") or _bearer(request)
    return await _chat(request, AnthropicAnswer, anthropic_input, raw)
