"""``/ws/runs/<id>/?after=<seq>``: a client that holds exactly the seq the server's state covers
gets a light snapshot (statuses and text lengths, no text); any other gets the full one.

The consumer runs in this process against the embedded Redis (live state written by hand)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from tests.workbench.runs.helpers import simulated_pool, start_run
from workbench.accounts.models import User, Workspace
from workbench.runs import tasks
from workbench.runs.consumers import RunConsumer
from workbench.runs.live import LiveStore, LiveWrite
from workbench.runs.models import Run, RunStatus
from workbench.runs.publish import publish_events, redis_client

pytestmark = pytest.mark.usefixtures("transactional_db")

TEXT = "héllo 🌍 wörld"  # code points, not UTF-16 units or bytes, are what is counted
SEQ = 7


@pytest.fixture
def running_run(monkeypatch: pytest.MonkeyPatch, alice: User, workspace: Workspace) -> Run:
    monkeypatch.setattr(tasks.run_execute, "delay", lambda run_id: None)
    run = start_run(simulated_pool(workspace, alice, ["sim-fast"]), alice)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, attempts=1)
    return run


@pytest.fixture
async def live_state(running_run: Run) -> AsyncIterator[str]:
    run_id = str(running_run.pk)
    client = redis_client()
    store = LiveStore(client)
    part = {"kind": "candidate", "candidate": "m1", "round": 0, "status": "streaming"}
    await store.write(
        run_id,
        LiveWrite(
            seq=SEQ,
            resets={"m1/0"},
            appends={"m1/0": TEXT},
            run={"status": "running", "mode": "best_of"},
            parts={"m1/0": part},
        ),
    )
    yield run_id
    await store.delete(run_id)
    await client.aclose()


async def _first_message(run_id: str, user: User, query: str) -> dict[str, Any]:
    communicator = WebsocketCommunicator(RunConsumer.as_asgi(), f"/ws/runs/{run_id}/{query}")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"run_id": run_id}}
    connected, _ = await communicator.connect()
    assert connected
    try:
        return await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()


async def test_it_sends_a_light_snapshot_to_a_client_holding_its_seq(
    live_state: str, alice: User
) -> None:
    message = await _first_message(live_state, alice, f"?after={SEQ}")
    assert message["type"] == "run.snapshot" and message["seq"] == SEQ
    assert message["light"] is True
    part = message["state"]["parts"]["m1/0"]
    assert "text" not in part and part["chars"] == len(TEXT)
    assert part["status"] == "streaming"
    assert message["state"]["run"]["status"] == "running"


@pytest.mark.parametrize(
    "query", ["", f"?after={SEQ - 1}", "?after=0", f"?after={SEQ + 3}", "?after=x"]
)
async def test_it_sends_a_full_snapshot_otherwise(live_state: str, alice: User, query: str) -> None:
    message = await _first_message(live_state, alice, query)
    assert message["seq"] == SEQ and "light" not in message
    assert message["state"]["parts"]["m1/0"]["text"] == TEXT


async def test_it_answers_a_request_for_a_full_snapshot_after_a_light_one(
    live_state: str, alice: User
) -> None:
    communicator = WebsocketCommunicator(
        RunConsumer.as_asgi(), f"/ws/runs/{live_state}/?after={SEQ}"
    )
    communicator.scope["user"] = alice
    communicator.scope["url_route"] = {"kwargs": {"run_id": live_state}}
    await communicator.connect()
    try:
        assert (await communicator.receive_json_from(timeout=5))["light"] is True
        await communicator.send_to(text_data='"snapshot"')  # the client's copy did not fit
        full = await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()
    assert "light" not in full and full["state"]["parts"]["m1/0"]["text"] == TEXT


async def test_it_prefers_the_stored_record_of_an_ended_run(
    live_state: str, running_run: Run, alice: User
) -> None:
    # The worker wrote its final record (seq and texts) after the live state.
    await sync_to_async(_finish)(running_run)
    message = await _first_message(live_state, alice, "")
    assert message["state"]["run"]["status"] == "finished"
    assert message["seq"] == SEQ
    assert message["state"]["parts"]["m1/0"]["text"] == "stored answer"


def _finish(run: Run) -> None:
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FINISHED, last_seq=SEQ)
    run.candidates.update(status="done", text="stored answer")


async def test_it_closes_an_unknown_run_even_with_after(alice: User) -> None:
    communicator = WebsocketCommunicator(
        RunConsumer.as_asgi(), f"/ws/runs/{uuid.uuid4()}/?after={SEQ}"
    )
    communicator.scope["user"] = alice
    communicator.scope["url_route"] = {"kwargs": {"run_id": str(uuid.uuid4())}}
    await communicator.connect()
    closed = await communicator.receive_output(timeout=5)
    assert closed == {"type": "websocket.close", "code": 4404}
    await communicator.disconnect()


async def test_it_tells_a_client_the_run_ended_when_the_stored_state_covered_its_last_event(
    live_state: str, alice: User
) -> None:
    # The worker's last checkpoint (seq 9) lands before its flush of events 8-9 (the run's
    # end) and before the run's final status: the client starts from the stored state...
    await sync_to_async(Run.objects.filter(pk=live_state).update)(last_seq=SEQ + 2)
    communicator = WebsocketCommunicator(RunConsumer.as_asgi(), f"/ws/runs/{live_state}/")
    communicator.scope["user"] = alice
    communicator.scope["url_route"] = {"kwargs": {"run_id": live_state}}
    assert (await communicator.connect())[0]
    try:
        first = await communicator.receive_json_from(timeout=5)
        assert first["seq"] == SEQ + 2 and first["state"]["run"]["status"] == "running"
        # ...then the flush lands and is published, its events all covered by that seq.
        client = redis_client()
        try:
            await LiveStore(client).write(
                live_state, LiveWrite(seq=SEQ + 2, run={"status": "finished", "mode": "best_of"})
            )
        finally:
            await client.aclose()
        end = {"seq": SEQ + 2, "run": live_state, "type": "run.finished", "totals": {}}
        await publish_events(live_state, [json.dumps(end)], [SEQ + 2])

        ended = await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()

    assert ended["type"] == "run.snapshot"
    assert ended["state"]["run"]["status"] == "finished"
