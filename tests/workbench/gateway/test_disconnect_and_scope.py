"""A client that goes away cancels its run, before the first byte or mid-stream, for a pool
and for a single model; a token never reaches another workspace. Against the live stack."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.workbench.gateway.helpers import (
    FAST,
    remote_credential,
    serving,
    sim_credential,
    token_for,
)
from tests.workbench.runs.helpers import simulated_pool
from workbench.accounts.services import workspace_create
from workbench.lib.stack import Stack
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.models import Mode
from workbench.pools.services import pool_create
from workbench.runs.models import CallStatus, Run, RunStatus
from workbench.tokens.models import ApiToken
from workbench.tokens.services import token_revoke

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "Hello?"}]


def wait_for_status(status: str, timeout: float = 15) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.order_by("-created_at").first()
        if run is not None and run.status == status:
            return run
        time.sleep(0.1)
    raise AssertionError(f"no run became {status}")


@pytest.mark.parametrize("stream", [False, True])
def test_it_cancels_the_run_when_the_client_disconnects(
    live_stack: Stack, alice, workspace, stream: bool
) -> None:
    pool = simulated_pool(workspace, alice, ["sim-hang", "sim-hang"], judge=None)
    headers = {"Authorization": f"Bearer {token_for(alice, workspace)}"}
    body = {"model": f"fusion/{pool.slug}", "messages": PROMPT, "stream": stream}
    # A cold server's first request imports half the project: warm it, or the 2 s below may
    # run out before the run even exists.
    assert httpx.get(live_stack.url + "/v1/models", headers=headers, timeout=30).status_code == 200
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live_stack.url + "/v1/chat/completions", json=body, headers=headers, timeout=2)

    run = wait_for_status(RunStatus.CANCELLED)
    assert run.pool_id == pool.pk


KEY = "sk-test-disconnect-0000-4444"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serving(Upstream(valid_keys=[KEY])) as up:
        yield up


def merge_pool_whose_synthesis_hangs(workspace, user, upstream: Upstream):  # type: ignore[no-untyped-def]
    """Members answer at once; the judge's analysis too; its synthesis streams, then hangs."""
    sim = sim_credential(workspace, user)
    remote = remote_credential(workspace, user, upstream.url, [KEY])
    upstream.script(
        "judge",
        Script(text='{"consensus": ["four"]}'),
        Script(tokens=40, fail="hang", fail_after=3),
    )
    return pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name="merge, slow synthesis",
            mode=Mode.MERGE,
            members=[MemberInput(sim.pk, FAST, custom_model=True) for _ in range(2)],
            judge=JudgeInput(remote.pk, "judge", custom_model=True),
        ),
    )


def read_until_content_then_leave(url: str, body: dict, token: str) -> str:
    """Stream, read until a piece of the answer has arrived, then drop the connection."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        run_id = response.headers["X-Fusion-Run-Id"]
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                "content"
            ):
                return run_id  # leaving the block closes the connection mid-stream
    raise AssertionError("the stream ended before any content")


def wait_for(run_id: str, status: str, timeout: float = 15) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(pk=run_id)
        if run.status == status:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} is {run.status}, not {status}")


def test_it_cancels_a_pool_run_when_the_client_leaves_mid_stream(
    live_stack: Stack, alice, workspace, upstream: Upstream
) -> None:
    pool = merge_pool_whose_synthesis_hangs(workspace, alice, upstream)
    body = {"model": f"fusion/{pool.slug}", "messages": PROMPT, "stream": True}

    run_id = read_until_content_then_leave(
        live_stack.url + "/v1/chat/completions", body, token_for(alice, workspace)
    )

    run = wait_for(run_id, RunStatus.CANCELLED)
    assert len(upstream.requests_for("judge")) == 2  # it was in the synthesis
    assert run.calls.filter(phase="synthesis", status=CallStatus.CANCELLED).exists()


def test_it_cancels_a_single_model_when_the_client_leaves_mid_stream(
    live_stack: Stack, alice, workspace
) -> None:
    credential = sim_credential(workspace, alice)
    body = {"model": f"{credential.label}/sim-hang", "messages": PROMPT, "stream": True}

    run_id = read_until_content_then_leave(
        live_stack.url + "/v1/chat/completions", body, token_for(alice, workspace)
    )

    run = wait_for(run_id, RunStatus.CANCELLED)
    call = run.calls.get()
    assert call.status == CallStatus.CANCELLED and call.output_tokens > 0


def test_it_keeps_a_token_to_its_own_workspace(
    live_stack: Stack, alice, charlie, workspace
) -> None:
    acme_pool = simulated_pool(workspace, alice, [FAST])
    other = workspace_create(owner=alice, name="Other")
    token = token_for(alice, other)
    api = openai.OpenAI(base_url=live_stack.url + "/v1", api_key=token, max_retries=0)

    assert f"fusion/{acme_pool.slug}" not in {m.id for m in api.models.list()}
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model=f"fusion/{acme_pool.slug}", messages=PROMPT)
    charlie_api = openai.OpenAI(
        base_url=live_stack.url + "/v1",
        api_key=token_for(charlie, charlie.memberships.first().workspace),
        max_retries=0,
    )
    with pytest.raises(openai.NotFoundError):
        charlie_api.chat.completions.create(model=f"fusion/{acme_pool.slug}", messages=PROMPT)
    assert not Run.objects.exists()


def test_it_refuses_a_revoked_token(live_stack: Stack, alice, workspace) -> None:
    raw = token_for(alice, workspace)
    token = ApiToken.objects.get()
    token_revoke(token=token, user=alice, membership=alice.memberships.get(workspace=workspace))
    api = openai.OpenAI(base_url=live_stack.url + "/v1", api_key=raw, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        api.models.list()


def test_it_refuses_a_viewer_a_run(live_stack: Stack, alice, vera, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST])
    api = openai.OpenAI(
        base_url=live_stack.url + "/v1", api_key=token_for(vera, workspace), max_retries=0
    )
    with pytest.raises(openai.PermissionDeniedError):
        api.chat.completions.create(model=f"fusion/{pool.slug}", messages=PROMPT)
