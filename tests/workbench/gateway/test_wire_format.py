"""The raw bytes of both wire formats, streamed and not, as the providers' own docs define them.

OpenAI (chat completions streaming): every event is ``data: <chunk>``; every chunk has the same
``id``, ``object: "chat.completion.chunk"``, the same ``created`` and ``model``; the first
delta carries the role, then content deltas, then an empty delta with ``finish_reason``; with
``stream_options.include_usage`` every chunk has ``"usage": null`` and one last chunk has
empty ``choices`` and the usage; the stream ends with exactly ``data: [DONE]``.

Anthropic (Messages streaming): named events ``message_start``, ``content_block_start``,
``content_block_delta``…, ``content_block_stop``, ``message_delta`` (``stop_reason``,
cumulative ``usage``), ``message_stop``; each ``data`` repeats its event name as ``type``.

Single models run in this process; pools run eagerly where they are created.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from tests.workbench.gateway.helpers import (
    FAST,
    PROMPT,
    eager_runs,
    post,
    sim_credential,
    sse_frames,
    token_for,
)
from tests.workbench.runs.helpers import simulated_pool
from workbench.pools.models import Mode
from workbench.runs.models import ProviderCall, Run

pytestmark = pytest.mark.django_db(transaction=True)

CHAT, MESSAGES = "/v1/chat/completions", "/anthropic/v1/messages"


def openai_chunks(raw: bytes, *, include_usage: bool) -> list[dict[str, Any]]:
    """Check the framing of an OpenAI stream; the chunks, in order."""
    frames = sse_frames(raw)
    assert frames[-1] == "data: [DONE]"
    assert all(f.startswith("data: ") and "\n" not in f for f in frames)
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    first = chunks[0]
    for c in chunks:
        assert c["object"] == "chat.completion.chunk"
        assert (c["id"], c["created"], c["model"]) == (
            first["id"],
            first["created"],
            first["model"],
        )
        assert first["id"].startswith("chatcmpl-") and isinstance(first["created"], int)
    if include_usage:
        *answer, last = chunks
        assert last["choices"] == [] and set(last["usage"]) == {
            "prompt_tokens", "completion_tokens", "total_tokens",
        }  # fmt: skip
        assert all(c["usage"] is None for c in answer)
    else:
        answer = chunks
        assert all("usage" not in c and c["choices"] for c in answer)
    assert answer[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0] for c in answer[1:-1]]
    assert deltas and all(set(d["delta"]) == {"content"} for d in deltas)
    assert all(d["finish_reason"] is None for d in [answer[0]["choices"][0], *deltas])
    finish = answer[-1]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] in ("stop", "length")
    return chunks


def openai_text(chunks: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def anthropic_events(raw: bytes) -> list[dict[str, Any]]:
    """Check the framing and order of an Anthropic stream; the events' data, in order."""
    events = []
    for frame in sse_frames(raw):
        name_line, data_line = frame.split("\n")
        name = name_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert name_line.startswith("event: ") and data["type"] == name
        events.append(data)
    names = [e["type"] for e in events]
    assert names[:2] == ["message_start", "content_block_start"]
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(names[2:-3]) == {"content_block_delta"} and len(names) > 5
    message = events[0]["message"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"] == [] and message["stop_reason"] is None
    assert message["id"].startswith("msg_")
    assert events[1] == {
        "type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""},
    }  # fmt: skip
    for delta in events[2:-3]:
        assert delta["index"] == 0 and delta["delta"]["type"] == "text_delta"
    assert events[-3] == {"type": "content_block_stop", "index": 0}
    end = events[-2]
    assert end["delta"]["stop_reason"] in ("end_turn", "max_tokens")
    assert end["delta"]["stop_sequence"] is None
    assert set(end["usage"]) >= {"input_tokens", "output_tokens"}
    assert events[-1] == {"type": "message_stop"}
    return events


async def recorded(run_id: str) -> tuple[int, int]:
    calls = [c async for c in ProviderCall.objects.filter(run_id=run_id)]
    return sum(c.input_tokens for c in calls), sum(c.output_tokens for c in calls)


async def test_it_streams_a_single_model_in_the_openai_chunk_format(alice, workspace) -> None:
    credential = await sync_to_async(sim_credential)(workspace, alice)
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"{credential.label}/{FAST}", "messages": PROMPT, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip

    reply = await post(CHAT, body, token)

    assert reply.status == 200 and reply.headers["Content-Type"] == "text/event-stream"
    chunks = openai_chunks(reply.raw, include_usage=True)
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert chunks[0]["id"] == f"chatcmpl-{run.pk.hex}" and chunks[0]["model"] == body["model"]
    assert openai_text(chunks) == run.fused_text and run.fused_text.startswith("[simulated")
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == await recorded(str(run.pk))
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


async def test_it_sends_no_usage_unless_the_client_asks(alice, workspace) -> None:
    credential = await sync_to_async(sim_credential)(workspace, alice)
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"{credential.label}/{FAST}", "messages": PROMPT, "stream": True}

    reply = await post(CHAT, body, token)

    chunks = openai_chunks(reply.raw, include_usage=False)
    assert openai_text(chunks).startswith("[simulated")


async def test_it_streams_a_pool_in_the_openai_chunk_format(alice, workspace) -> None:
    pool = await sync_to_async(simulated_pool)(
        workspace, alice, [FAST, FAST], mode=Mode.MERGE, judge="sim-judge@ttft=0.01,tps=300"
    )
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"fusion/{pool.slug}", "messages": PROMPT, "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip

    with eager_runs():
        reply = await post(CHAT, body, token)

    chunks = openai_chunks(reply.raw, include_usage=True)
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert openai_text(chunks).strip() == run.fused_text.strip() != ""
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == await recorded(str(run.pk))
    assert chunks[-2]["fusion"]["run_id"] == str(run.pk)  # on the finish chunk


async def test_it_answers_a_non_streaming_chat_completion(alice, workspace) -> None:
    credential = await sync_to_async(sim_credential)(workspace, alice)
    token = await sync_to_async(token_for)(alice, workspace)

    reply = await post(CHAT, {"model": f"{credential.label}/{FAST}", "messages": PROMPT}, token)

    body = reply.json()
    assert reply.status == 200 and body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-") and body["model"] == f"{credential.label}/{FAST}"
    (choice,) = body["choices"]
    assert choice["index"] == 0 and choice["finish_reason"] == "stop"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"]
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == await recorded(str(run.pk))


async def test_it_streams_a_single_model_in_the_anthropic_events(alice, workspace) -> None:
    credential = await sync_to_async(sim_credential)(workspace, alice)
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"{credential.label}/{FAST}", "max_tokens": 100, "messages": PROMPT,
            "stream": True}  # fmt: skip

    reply = await post(MESSAGES, body, token, api_key_header=True)

    assert reply.status == 200 and reply.headers["Content-Type"] == "text/event-stream"
    events = anthropic_events(reply.raw)
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert events[0]["message"]["id"] == f"msg_{run.pk.hex}"
    assert events[0]["message"]["model"] == body["model"]
    assert "".join(e["delta"]["text"] for e in events[2:-3]) == run.fused_text
    usage = events[-2]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == await recorded(str(run.pk))


async def test_it_streams_a_pool_in_the_anthropic_events(alice, workspace) -> None:
    pool = await sync_to_async(simulated_pool)(
        workspace, alice, [FAST, FAST], mode=Mode.MERGE, judge="sim-judge@ttft=0.01,tps=300"
    )
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"fusion/{pool.slug}", "max_tokens": 200, "messages": PROMPT, "stream": True}

    with eager_runs():
        reply = await post(MESSAGES, body, token)

    events = anthropic_events(reply.raw)
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert "".join(e["delta"]["text"] for e in events[2:-3]).strip() == run.fused_text.strip()
    usage = events[-2]["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == await recorded(str(run.pk))
    assert events[-2]["fusion"]["run_id"] == str(run.pk)


async def test_it_answers_a_non_streaming_message(alice, workspace) -> None:
    credential = await sync_to_async(sim_credential)(workspace, alice)
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"{credential.label}/{FAST}", "max_tokens": 100, "messages": PROMPT}

    reply = await post(MESSAGES, body, token, api_key_header=True)

    message = reply.json()
    assert reply.status == 200 and message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "text" and message["content"][0]["text"]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    usage = message["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == await recorded(str(run.pk))
