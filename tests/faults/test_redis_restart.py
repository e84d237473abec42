"""Redis restarted in the middle of a run, against a stack of its own.

Its own embedded Redis (the shared one, or CI's system Redis, is never touched), its own daphne
and Celery worker pointed at it. The Redis is killed while the members stream and started again
on the same socket, empty, as a Redis without persistence comes back, while websocket clients
keep dropping and reconnecting. The run must end with its texts stored whole; no client may
ever see text lost or duplicated; the worker must survive (it used to exit: see
``workbench.celery._survive_broker_restarts``) and run the next run.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from tests.faults.outage import start_daphne, stop_process
from tests.workbench import conftest as people
from tests.workbench.runs.helpers import (
    Rebuilt,
    session_headers,
    simulated_pool,
    wait_for_end,
    watch,
)
from workbench.accounts.models import User, Workspace
from workbench.lib.embedded_redis import start_embedded_redis
from workbench.lib.stack import Worker, start_worker
from workbench.runs.models import CandidateStatus, Run
from workbench.tokens.services import token_create

pytestmark = [pytest.mark.slow]

_fast_and_isolated = people._fast_and_isolated
make_user, alice, workspace = people.make_user, people.alice, people.workspace
TERMINAL = {"run.finished", "run.failed", "run.cancelled"}
# About 3 s of streaming per member: time to restart Redis in the middle.
STREAMING = "sim-fast@ttft=0.05,tps=40,tokens=120"


@dataclass
class OwnStack:
    url: str
    ws_url: str
    socket_path: Path
    redis: subprocess.Popen[bytes]
    daphne: subprocess.Popen[bytes]
    worker: Worker
    log_dir: Path

    def restart_redis(self, down_for: float = 0.5) -> None:
        self.redis.kill()
        self.redis.wait(timeout=10)
        time.sleep(down_for)
        self.redis = start_embedded_redis(self.socket_path, log_path=self.log_dir / "redis.log")

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.log_dir.glob("*.log"))


@pytest.fixture
def own_stack(transactional_db: None) -> Iterator[OwnStack]:
    # A short path: unix socket paths are limited to about 100 bytes.
    folder = Path(tempfile.mkdtemp(prefix="fw-redis-"))
    socket_path = folder / "r.sock"
    redis = start_embedded_redis(socket_path, log_path=folder / "redis.log")
    redis_url = f"unix://{socket_path}"
    daphne, url = start_daphne(folder, REDIS_URL=redis_url)
    worker = None
    try:
        worker = start_worker(folder, "redis-restart", REDIS_URL=redis_url)
        stack = OwnStack(
            url, url.replace("http://", "ws://"), socket_path, redis, daphne, worker, folder
        )
        yield stack
    finally:
        if worker is not None:
            worker.stop()
        stop_process(daphne)
        with contextlib.suppress(NameError):
            stack.redis.kill()
        redis.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _rebuild(stack: OwnStack, run: Run, user: User) -> Rebuilt:
    """What a client connecting now rebuilds, from the snapshot and the events after it."""
    state = Rebuilt()
    headers = session_headers(user, stack.url)
    with connect(f"{stack.ws_url}/ws/runs/{run.pk}/", additional_headers=headers) as ws:
        state.apply(json.loads(ws.recv(timeout=10)))  # the snapshot: the run has ended
    return state


class FlakyWatchers:
    """Clients that keep dropping their websocket after a few messages and reconnecting, in a
    thread, until one of them sees the run end. Every text any of them held at any moment is
    kept, to check later that each was a prefix of the stored text (nothing lost or doubled)."""

    def __init__(self, stack: OwnStack, run: Run, user: User) -> None:
        self.url = f"{stack.ws_url}/ws/runs/{run.pk}/"
        self.headers = session_headers(user, stack.url)
        self.seen: list[dict[str, str]] = []
        self.connections = 0
        self.refused = 0  # connections that failed while Redis was down
        self.final: Rebuilt | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FlakyWatchers:
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the watchers never saw the run end"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + 90
            while self.final is None and time.monotonic() < deadline:
                # Drop each connection after a few messages or a moment, whichever comes first.
                n = self.connections
                try:
                    self._one_connection(messages=1 + n % 4, lifetime=0.1 + 0.1 * (n % 3))
                except (OSError, WebSocketException):
                    self.refused += 1
                    time.sleep(0.05)
        except BaseException as exc:  # surfaced by join()
            self.error = exc

    def _one_connection(self, *, messages: int, lifetime: float) -> None:
        state = Rebuilt()
        with connect(self.url, additional_headers=self.headers, open_timeout=5) as ws:
            self.connections += 1
            until = time.monotonic() + lifetime
            for _ in range(messages):
                try:
                    message = json.loads(ws.recv(timeout=max(0.01, until - time.monotonic())))
                except TimeoutError:
                    return
                state.apply(message)  # asserts there is no gap in what one connection gets
                self.seen.append(dict(state.texts))
                if state.status in TERMINAL_STATUSES:
                    self.final = state
                    return


TERMINAL_STATUSES = {"finished", "finished_without_verdict", "failed", "cancelled"}


def _create_run(stack: OwnStack, workspace: Workspace, pool_slug: str, token: str) -> Run:
    response = httpx.post(
        f"{stack.url}/api/v1/workspaces/{workspace.slug}/runs",
        json={"pool": pool_slug, "prompt": "Count slowly."},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return Run.objects.get(pk=response.json()["id"])


def _stored_texts(run: Run) -> dict[str, str]:
    """Every part's stored text: the members' and the judge's."""
    candidates = list(run.candidates.all())
    assert candidates and all(
        c.status == CandidateStatus.DONE and c.finish_reason for c in candidates
    )
    texts = {f"{c.member}/{c.round}": c.text for c in candidates}
    texts.update({part: data["text"] for part, data in run.judge_parts.items()})
    assert any(part.startswith("judge") for part in texts), "the judge's text is stored too"
    return texts


def test_it_ends_the_run_and_keeps_texts_whole_across_a_redis_restart(
    own_stack: OwnStack, alice: User, workspace: Workspace
) -> None:
    pool = simulated_pool(workspace, alice, [STREAMING, STREAMING])
    _, token = token_create(workspace=workspace, user=alice, name="fault test")
    run = _create_run(own_stack, workspace, pool.slug, token)

    # Watch until the members stream, then restart Redis under the run while clients keep
    # dropping and reconnecting.
    headers = session_headers(alice, own_stack.url)
    deltas = 0
    with connect(f"{own_stack.ws_url}/ws/runs/{run.pk}/", additional_headers=headers) as ws:
        deadline = time.monotonic() + 30
        while deltas < 5:
            assert time.monotonic() < deadline, "the run never started streaming"
            message = json.loads(ws.recv(timeout=30))
            assert message["type"] not in TERMINAL, "the run ended before Redis could restart"
            deltas += message["type"] == "candidate.delta"
    watchers = FlakyWatchers(own_stack, run, alice).start()
    deadline = time.monotonic() + 10
    while watchers.connections < 2:  # they are dropping and reconnecting: restart under them
        assert time.monotonic() < deadline and watchers.final is None, "the watchers never began"
        time.sleep(0.02)
    before_restart = watchers.connections
    own_stack.restart_redis()
    watchers.join(timeout=90)

    run = wait_for_end(run, timeout=90)
    assert run.status == "finished", (run.status, run.error)
    stored = _stored_texts(run)
    members = [text for part, text in stored.items() if part.startswith("m")]
    assert len(members) == 2 and all(len(t.split()) >= 100 for t in members), f"whole: {stored}"

    assert before_restart >= 1 and watchers.connections - before_restart >= 3, (
        "clients dropped and reconnected across the restart"
    )
    for texts in watchers.seen:  # at every moment, on every connection: nothing lost or doubled
        for part, text in texts.items():
            assert stored[part].startswith(text), f"{part}: {text!r} does not start the stored text"
    assert watchers.final is not None
    assert watchers.final.texts == stored, "a reconnected client's texts are the stored ones"
    assert _rebuild(own_stack, run, alice).texts == stored, "a client connecting after the end"

    # The worker survived the lost broker connection and runs the next run, live.
    assert own_stack.worker.process.poll() is None, own_stack.worker.log()[-3000:]
    assert "Unrecoverable error" not in own_stack.worker.log()
    second = _create_run(own_stack, workspace, pool.slug, token)
    live = Rebuilt()
    for message in watch(own_stack.ws_url, second, headers, timeout=60):
        live.apply(message)
    second = wait_for_end(second, timeout=30)
    assert second.status == "finished", (second.status, second.error)
    stored = _stored_texts(second)
    assert live.texts == stored
