"""A careless upstream that echoes the key back in its errors never gets it to a gateway client:
not in /v1 or /anthropic bodies, streamed or not, error frames, headers, nor the stored run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from asgiref.sync import sync_to_async

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.workbench.gateway.helpers import (
    PROMPT,
    Reply,
    eager_runs,
    post,
    remote_credential,
    serving,
    sim_credential,
    token_for,
)
from workbench.keys.models import Credential
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.models import ProviderCall, Run

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-LEAKCANARY-gateway-0123456789abcdef-Q7W8"
WRONG = "sk-LEAKCANARY-wrongkey-fedcba9876543210-P1O2"  # rejected: echoed in the 401
CHAT, MESSAGES = "/v1/chat/completions", "/anthropic/v1/messages"


def forms(key: str) -> set[str]:
    return {key, key[:-4], quote(key, safe=""), "LEAKCANARY"}


def assert_clean(where: str, reply: Reply) -> None:
    texts = [reply.raw.decode(), json.dumps(reply.headers)]
    for text in texts:
        for form in forms(KEY) | forms(WRONG):
            assert form not in text, f"a key leaked into {where}"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(valid_keys=[KEY])
    # A permanent error, a retryable one, and one mid-stream after some text: all echo the key.
    up.script("leaky", Script(status=400, echo_key=True, error_message="bad request"))
    up.script("leaky-429", Script(status=429, echo_key=True, retry_after="0"))
    up.script(
        "leaky-stream",
        Script(tokens=20, fail="stream_error", fail_after=3, error_status=400, echo_key=True,
               error_message="stream broke"),
    )  # fmt: skip
    with serving(up):
        yield up


async def test_it_keeps_an_echoed_key_out_of_single_model_answers(
    alice, workspace, upstream: Upstream
) -> None:
    await sync_to_async(remote_credential)(workspace, alice, upstream.url, [KEY], "careless")
    await sync_to_async(remote_credential)(workspace, alice, upstream.url, [WRONG], "wrong")
    token = await sync_to_async(token_for)(alice, workspace)
    replies: dict[str, Reply] = {}
    cases = [("careless/leaky", (False, True)), ("careless/leaky-stream", (False, True)),
             ("wrong/any", (False, True)), ("careless/leaky-429", (False,))]  # fmt: skip
    for model, streams in cases:  # (a 429 is retried with backoff: once is enough)
        for stream in streams:
            body = {"model": model, "messages": PROMPT, "stream": stream, "max_tokens": 50}
            replies[f"{CHAT} {model} stream={stream}"] = await post(CHAT, body, token)
            replies[f"{MESSAGES} {model} stream={stream}"] = await post(
                MESSAGES, body, token, api_key_header=True
            )
    replies["/v1/models"] = await _get_models(token)

    # The faults happened as scripted: the key went upstream and came back in the errors.
    sent = upstream.requests_for("leaky")[0].headers["authorization"]
    assert sent == f"Bearer {KEY}"
    assert replies[f"{CHAT} careless/leaky stream=False"].status == 400
    assert replies[f"{CHAT} wrong/any stream=False"].status == 502
    streamed = replies[f"{CHAT} careless/leaky-stream stream=True"]
    assert streamed.status == 200 and "stream broke" in streamed.text  # an error frame
    for where, reply in replies.items():
        assert_clean(where, reply)
    stored = [c.error async for c in ProviderCall.objects.all()]
    stored += [r.error async for r in Run.objects.all()]
    assert any("bad request" in e for e in stored)
    for form in forms(KEY) | forms(WRONG):
        assert form not in json.dumps(stored), "a key leaked into the stored errors"


async def test_it_keeps_an_echoed_key_out_of_a_pools_answer(alice, workspace, upstream) -> None:
    remote = await sync_to_async(remote_credential)(
        workspace, alice, upstream.url, [KEY], "careless"
    )
    sim = await sync_to_async(sim_credential)(workspace, alice, "sim")
    pool = await sync_to_async(_leaky_pool)(workspace, alice, sim, remote)
    token = await sync_to_async(token_for)(alice, workspace)

    with eager_runs():
        plain = await post(CHAT, {"model": f"fusion/{pool.slug}", "messages": PROMPT}, token)
        streamed = await post(
            MESSAGES,
            {"model": f"fusion/{pool.slug}", "messages": PROMPT, "max_tokens": 50,
             "stream": True},
            token,
        )  # fmt: skip

    candidates = plain.json()["fusion"]["candidates"]
    assert any(c["error"] and "bad request" in c["error"] for c in candidates)
    assert_clean("a pool's answer", plain)
    assert_clean("a pool's stream", streamed)


def _leaky_pool(workspace, user, sim: Credential, remote: Credential):  # type: ignore[no-untyped-def]
    return pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name="leaky pool",
            members=[
                MemberInput(credential_id=sim.pk, model="sim-fast@ttft=0,tps=0", custom_model=True),
                MemberInput(credential_id=remote.pk, model="leaky", custom_model=True),
                MemberInput(credential_id=remote.pk, model="leaky-stream", custom_model=True),
            ],
            judge=JudgeInput(
                credential_id=sim.pk, model="sim-judge@ttft=0,tps=0", custom_model=True
            ),
        ),
    )


async def _get_models(token: str) -> Reply:
    from django.test import AsyncClient

    response = await AsyncClient().get("/v1/models", headers={"authorization": f"Bearer {token}"})
    return Reply(response.status_code, dict(response.items()), response.content)
