"""Who may watch a run's websocket: alice (owner) and bob (member) yes, charlie no."""

from __future__ import annotations

import json
import uuid

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.workbench.runs.helpers import session_headers, simulated_pool, start_run, wait_for_end
from workbench.lib.stack import Stack

pytestmark = pytest.mark.slow


@pytest.fixture
def finished_run(live_stack: Stack, alice, workspace):
    pool = simulated_pool(workspace, alice, ["sim-fast@ttft=0.01,tps=0,tokens=10"])
    return wait_for_end(start_run(pool, alice))


def _close_code(url: str, headers: dict[str, str]) -> int | None:
    with connect(url, additional_headers=headers) as ws:
        try:
            ws.recv(timeout=5)
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


@pytest.mark.parametrize("who", ["alice", "bob", "vera"])
def test_it_sends_members_a_snapshot(live_stack: Stack, finished_run, who, request) -> None:
    user = request.getfixturevalue(who)
    url = f"{live_stack.ws_url}/ws/runs/{finished_run.pk}/"
    with connect(url, additional_headers=session_headers(user, live_stack.url)) as ws:
        first = json.loads(ws.recv(timeout=5))
    assert first["type"] == "run.snapshot"
    assert first["state"]["run"]["status"] == "finished"
    assert first["seq"] == finished_run.last_seq


def test_it_closes_an_outsider_with_4404(live_stack: Stack, finished_run, charlie) -> None:
    url = f"{live_stack.ws_url}/ws/runs/{finished_run.pk}/"
    assert _close_code(url, session_headers(charlie, live_stack.url)) == 4404


def test_it_closes_an_unknown_run_with_4404(live_stack: Stack, alice) -> None:
    url = f"{live_stack.ws_url}/ws/runs/{uuid.uuid4()}/"
    assert _close_code(url, session_headers(alice, live_stack.url)) == 4404


def test_it_closes_an_anonymous_client_with_4403(live_stack: Stack, finished_run) -> None:
    url = f"{live_stack.ws_url}/ws/runs/{finished_run.pk}/"
    assert _close_code(url, {"Origin": live_stack.url}) == 4403


def test_it_refuses_a_foreign_origin(live_stack: Stack, finished_run, alice) -> None:
    headers = session_headers(alice, live_stack.url) | {"Origin": "https://evil.example"}
    url = f"{live_stack.ws_url}/ws/runs/{finished_run.pk}/"
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers).close()
    assert refused.value.response.status_code == 403
