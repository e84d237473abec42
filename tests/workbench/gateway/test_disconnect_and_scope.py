"""A client that goes away cancels its run; a token never reaches another workspace."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.workbench.gateway.helpers import FAST, token_for
from tests.workbench.runs.helpers import simulated_pool
from workbench.accounts.services import workspace_create
from workbench.lib.stack import Stack
from workbench.runs.models import Run, RunStatus
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
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(live_stack.url + "/v1/chat/completions", json=body, headers=headers, timeout=2)

    run = wait_for_status(RunStatus.CANCELLED)
    assert run.pool_id == pool.pk


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
