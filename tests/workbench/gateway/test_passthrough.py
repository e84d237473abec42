"""A single model (``<credential>/<model>``) goes through the engine's own call machinery, as a
run's member would: key pool, retries with backoff, fallback models, errors, the run time limit,
cancellation, and the call recorded as a one-member gateway run. Against a loopback upstream
speaking the OpenAI wire format, in this process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.workbench.gateway.helpers import (
    PROMPT,
    post,
    remote_credential,
    send,
    serving,
    sim_credential,
    sse_frames,
    token_for,
)
from tests.workbench.runs.helpers import simulated_pool
from workbench.gateway import passthrough, services
from workbench.runs.models import CallStatus, CandidateStatus, ProviderCall, Run, RunSource
from workbench.runs.services import run_cancel

pytestmark = pytest.mark.django_db(transaction=True)

CHAT, MESSAGES = "/v1/chat/completions", "/anthropic/v1/messages"
REJECTED, GOOD = "sk-test-rejected-key-0000-1111", "sk-test-good-key-0000-2222"
HANG = Script(tokens=40, fail="hang", fail_after=2)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serving(Upstream(valid_keys=[GOOD])) as up:
        yield up


async def setup(workspace, user, upstream: Upstream, keys: list[str]) -> str:
    """A credential "remote" with these keys at the upstream; a token for ``user``."""
    await sync_to_async(remote_credential)(workspace, user, upstream.url, keys)
    return await sync_to_async(token_for)(user, workspace)


def chat(model: str, **extra) -> dict:
    return {"model": f"remote/{model}", "messages": PROMPT, **extra}


async def only_call(run_id: str) -> ProviderCall:
    return await ProviderCall.objects.aget(run_id=run_id)


async def test_it_records_the_call_as_a_gateway_run_and_rotates_past_a_rejected_key(
    alice, alice_client, workspace, upstream: Upstream
) -> None:
    token = await setup(workspace, alice, upstream, [REJECTED, GOOD])
    upstream.script("plain", Script(text="four", usage=True))

    reply = await post(CHAT, chat("plain"), token)

    assert reply.status == 200 and reply.json()["choices"][0]["message"]["content"] == "four"
    keys = [r.headers["authorization"] for r in upstream.requests_for("plain")]
    assert keys == [f"Bearer {REJECTED}", f"Bearer {GOOD}"]  # the 401 dropped the first key
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert (run.source, run.status, run.fused_text, run.winner) == (
        RunSource.GATEWAY, "finished", "four", "m1",
    )  # fmt: skip
    call = await only_call(str(run.pk))
    assert (call.provider, call.model, call.status, call.key_label) == (
        "remote", "plain", CallStatus.OK, "…2222",
    )  # fmt: skip
    assert call.ttft_ms is not None and call.latency_ms > 0 and call.output_tokens == 1
    candidate = await run.candidates.aget()
    assert (candidate.status, candidate.text) == (CandidateStatus.DONE, "four")
    assert candidate.provider_kind == "openai_compatible"

    listing = await sync_to_async(alice_client.get)(f"/w/{workspace.slug}/runs/")
    html = listing.content.decode()
    assert f'data-run="{run.pk}"' in html and 'data-testid="source-gateway"' in html
    page = await sync_to_async(alice_client.get)(f"/w/{workspace.slug}/runs/{run.pk}/")
    assert page.status_code == 200 and "four" in page.content.decode()


async def test_it_retries_a_retryable_failure_with_backoff(alice, workspace, upstream) -> None:
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("busy", Script(status=503), Script(text="second try"))

    reply = await post(CHAT, chat("busy"), token)

    assert reply.json()["choices"][0]["message"]["content"] == "second try"
    assert upstream.calls("busy") == 2
    call = await only_call(reply.headers["X-Fusion-Run-Id"])
    assert (call.attempts, call.status) == (2, CallStatus.OK)


async def test_it_falls_back_to_the_next_model(alice, workspace, upstream) -> None:
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("retired", Script(status=404))  # permanent: no retry, the next model
    upstream.script("spare", Script(text="from the spare"))

    reply = await post(CHAT, chat("retired", fallbacks=["remote/spare"]), token)

    assert reply.json()["choices"][0]["message"]["content"] == "from the spare"
    assert (upstream.calls("retired"), upstream.calls("spare")) == (1, 1)
    call = await only_call(reply.headers["X-Fusion-Run-Id"])
    assert (call.model, call.attempts) == ("spare", 2)


async def test_it_sends_the_conversation_and_the_options_as_given(
    alice, workspace, upstream
) -> None:
    token = await setup(workspace, alice, upstream, [GOOD])
    messages = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "What is 2 + 2?"},
    ]

    reply = await post(
        CHAT, {"model": "remote/talk", "messages": messages, "temperature": 0.3,
               "max_tokens": 50}, token,
    )  # fmt: skip

    assert reply.status == 200
    (request,) = upstream.requests_for("talk")
    assert request.body["messages"] == messages  # not flattened into one prompt
    assert request.body["temperature"] == 0.3 and request.body["max_tokens"] == 50


@pytest.mark.parametrize(
    ("script", "status"),
    [(Script(status=404), 404), (Script(status=400), 400), (Script(status=401), 502)],
)
async def test_it_answers_an_upstream_failure_with_the_fitting_status(
    alice, workspace, upstream, script: Script, status: int
) -> None:
    # A 401 drops the key: with none left, the credential is at fault, not the caller.
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("broken", script)

    openai_reply = await post(CHAT, chat("broken"), token)
    anthropic_reply = await post(MESSAGES, chat("broken", max_tokens=10), token)

    assert openai_reply.status == anthropic_reply.status == status
    assert openai_reply.json()["error"]["code"] == "upstream_error"
    assert anthropic_reply.json()["type"] == "error"
    run = await Run.objects.aget(pk=openai_reply.headers["X-Fusion-Run-Id"])
    assert run.status == "failed" and "remote/broken" in run.error
    assert (await only_call(str(run.pk))).status == CallStatus.FAILED


async def test_it_refuses_fallbacks_for_a_pool(alice, workspace) -> None:
    pool = await sync_to_async(simulated_pool)(workspace, alice, ["sim-fast"])
    token = await sync_to_async(token_for)(alice, workspace)

    reply = await post(CHAT, {"model": f"fusion/{pool.slug}", "messages": PROMPT,
                              "fallbacks": ["x"]}, token)  # fmt: skip

    assert reply.status == 400 and reply.json()["error"]["param"] == "fallbacks"
    assert not await Run.objects.aexists()


async def test_it_stops_at_the_run_time_limit(alice, workspace, upstream, settings) -> None:
    settings.RUN_TIME_LIMIT_S = 0.3
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("slow", HANG)

    reply = await post(CHAT, chat("slow"), token)

    assert reply.status == 504 and reply.json()["error"]["code"] == "timeout"
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert run.status == "failed" and "time limit" in run.error
    assert (await only_call(str(run.pk))).status == CallStatus.CANCELLED


async def test_it_stops_when_a_person_cancels_the_run(alice, workspace, upstream) -> None:
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("slow", HANG)
    response = await send(CHAT, chat("slow", stream=True), token)  # returns at the first token
    run = await Run.objects.select_related("workspace").aget(pk=response["X-Fusion-Run-Id"])

    await sync_to_async(run_cancel)(run=run, user=alice)
    raw = b"".join([chunk async for chunk in response.streaming_content])

    error = json.loads(sse_frames(raw)[-1].removeprefix("data: "))
    assert error["error"]["code"] == "run_cancelled"
    await run.arefresh_from_db()
    assert run.status == "cancelled"
    call = await only_call(str(run.pk))
    assert call.status == CallStatus.CANCELLED and call.output_tokens > 0  # what streamed


async def test_it_cancels_the_call_when_the_client_goes_away(alice, workspace, upstream) -> None:
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("slow", HANG)
    response = await send(CHAT, chat("slow", stream=True), token)
    received: list[bytes] = []

    async def read() -> None:
        async for chunk in response.streaming_content:
            received.append(chunk)

    # What the ASGI handler does when the client disconnects: cancel the task sending the body.
    reader = asyncio.create_task(read())
    while not any(b'"content": "w' in chunk for chunk in received):
        await asyncio.sleep(0.01)
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader

    run = await Run.objects.aget(pk=response["X-Fusion-Run-Id"])
    assert run.status == "cancelled" and run.error == passthrough.DISCONNECTED
    call = await only_call(str(run.pk))
    assert call.status == CallStatus.CANCELLED and call.error == passthrough.DISCONNECTED
    assert (await run.candidates.aget()).status == CandidateStatus.CANCELLED


async def test_it_keeps_a_long_calls_heartbeat_and_text_fresh(
    alice, workspace, upstream, monkeypatch
) -> None:
    # The reaper resumes or fails a run whose heartbeat stops: a live call must not look dead.
    monkeypatch.setattr(passthrough, "CHECKPOINT_S", 0.05)
    token = await setup(workspace, alice, upstream, [GOOD])
    upstream.script("slow", HANG)
    response = await send(CHAT, chat("slow", stream=True), token)
    run = await Run.objects.select_related("workspace").aget(pk=response["X-Fusion-Run-Id"])
    opened_at = run.heartbeat_at

    for _ in range(100):
        await run.arefresh_from_db()
        candidate = await run.candidates.aget()
        if run.heartbeat_at > opened_at and candidate.text:
            break
        await asyncio.sleep(0.02)

    assert run.heartbeat_at > opened_at and candidate.text.startswith("w0")
    await sync_to_async(run_cancel)(run=run, user=alice)
    b"".join([chunk async for chunk in response.streaming_content])


async def test_it_answers_the_simulated_provider_too(alice, workspace) -> None:
    credential = await sync_to_async(sim_credential)(workspace, alice)
    token = await sync_to_async(token_for)(alice, workspace)

    reply = await post(CHAT, {"model": f"{credential.label}/sim-fast@ttft=0,tps=0,tokens=5",
                              "messages": PROMPT}, token)  # fmt: skip

    assert reply.json()["choices"][0]["message"]["content"].startswith("[simulated sim-fast]")


async def test_it_ends_the_run_of_a_client_that_left_while_it_was_being_made(
    alice, workspace, upstream, monkeypatch
) -> None:
    token = await setup(workspace, alice, upstream, [GOOD])
    opened = asyncio.Event()
    real_open = services.target_open

    def slow_open(**kwargs):  # type: ignore[no-untyped-def]
        call = real_open(**kwargs)  # the run exists from here on
        opened.set()
        time.sleep(0.2)  # the client leaves now
        return call

    monkeypatch.setattr(services, "target_open", slow_open)
    request = asyncio.create_task(post(CHAT, chat("plain"), token))
    await opened.wait()
    request.cancel()  # what the ASGI handler does on a disconnect
    with contextlib.suppress(asyncio.CancelledError):
        await request

    for _ in range(100):
        run = await Run.objects.aget()
        if run.is_terminal:
            break
        await asyncio.sleep(0.02)
    assert run.status == "cancelled" and "disconnected" in run.error
    assert upstream.calls("plain") == 0  # nobody was left to answer: no call was made
