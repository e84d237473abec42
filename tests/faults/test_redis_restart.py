"""Redis restarted in the middle of a run, against a stack of its own.

Its own embedded Redis (the shared one, or CI's system Redis, is never touched), its own daphne
and Celery worker pointed at it. The Redis is killed while the members stream and started again
on the same socket, empty, as a Redis without persistence comes back. The run must still end
(finished, or failed with a reason) with its texts stored whole, and a client that connects
afterwards must rebuild texts equal to the stored ones.

What happens today (found by this test): the run ends and clients rebuild whole texts (the
sink rewrites the live state after Redis lost it, since 85c8b67; before that a client connecting
after the restart missed everything streamed before it). But the Celery worker exits: kombu's
redis transport, restoring the unacknowledged run task after the broker connection is lost,
fails in ``_connparams`` (``'NoneType' object has no attribute 'hostname'``, cf.
celery/kombu#582); Celery calls it unrecoverable, finishes the running task and shuts down, and
later runs stay queued until something restarts the worker (compose: ``restart:
unless-stopped``). The test xfails on that, naming it, and passes once it is fixed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

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
from workbench.lib.stack import BASE_DIR, Worker, free_port, stack_env, start_worker
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
    port = free_port()
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "workbench.asgi:application"],
        cwd=BASE_DIR, env=stack_env(REDIS_URL=redis_url),
        stdout=(folder / "daphne.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    worker = None
    try:
        deadline = time.monotonic() + 60
        while True:
            assert daphne.poll() is None, (folder / "daphne.log").read_text()
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            assert time.monotonic() < deadline, "daphne did not start"
            time.sleep(0.1)
        worker = start_worker(folder, "redis-restart", REDIS_URL=redis_url)
        stack = OwnStack(
            f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", socket_path, redis, daphne,
            worker, folder,
        )  # fmt: skip
        yield stack
    finally:
        if worker is not None:
            worker.stop()
        daphne.terminate()
        try:
            daphne.wait(timeout=10)
        except subprocess.TimeoutExpired:
            daphne.kill()
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


def test_it_ends_the_run_and_keeps_texts_whole_across_a_redis_restart(
    own_stack: OwnStack, alice: User, workspace: Workspace
) -> None:
    pool = simulated_pool(workspace, alice, [STREAMING, STREAMING])
    _, raw = token_create(workspace=workspace, user=alice, name="fault test")
    response = httpx.post(
        f"{own_stack.url}/api/v1/workspaces/{workspace.slug}/runs",
        json={"pool": pool.slug, "prompt": "Count slowly."},
        headers={"Authorization": f"Bearer {raw}"},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    run = Run.objects.get(pk=response.json()["id"])

    # Watch until the members stream, then restart Redis under the run.
    headers = session_headers(alice, own_stack.url)
    deltas = 0
    with connect(f"{own_stack.ws_url}/ws/runs/{run.pk}/", additional_headers=headers) as ws:
        deadline = time.monotonic() + 30
        while deltas < 5:
            assert time.monotonic() < deadline, "the run never started streaming"
            message = json.loads(ws.recv(timeout=30))
            assert message["type"] not in TERMINAL, "the run ended before Redis could restart"
            deltas += message["type"] == "candidate.delta"
    own_stack.restart_redis()
    # A client reconnecting at once: snapshot, then the live tail to the end, without gaps.
    live = Rebuilt()
    for message in watch(own_stack.ws_url, run, headers, timeout=90):
        live.apply(message)

    run = wait_for_end(run, timeout=90)
    assert run.status in ("finished", "finished_without_verdict", "failed"), run.status
    if run.status == "failed":
        assert run.error, "a run failed by the outage says why"

    candidates = list(run.candidates.all())
    assert all(c.status == CandidateStatus.DONE and c.finish_reason for c in candidates)
    stored = {f"{c.member}/{c.round}": c.text for c in candidates}
    assert all(len(text.split()) >= 100 for text in stored.values()), f"stored whole: {stored}"

    assert {part: live.texts.get(part) for part in stored} == stored, "reconnected mid-run"
    got = {part: _rebuild(own_stack, run, alice).texts.get(part) for part in stored}
    assert got == stored, "a client connecting after the run rebuilds the stored texts"

    deadline = time.monotonic() + 15
    while own_stack.worker.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if own_stack.worker.process.poll() is not None:
        assert "Unrecoverable error" in own_stack.worker.log()
        pytest.xfail("the Celery worker exited after the broker connection was lost (kombu)")
