"""GET /healthz: 200 only when the database, Redis and a worker answer; else 503 naming what
is down."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from django.test import Client

from workbench.lib.embedded_redis import start_embedded_redis
from workbench.lib.stack import BASE_DIR, Stack, stack_env


@pytest.mark.slow
def test_it_is_healthy_when_everything_answers(live_stack: Stack) -> None:
    # A worker that just said "ready" may take a moment to answer remote-control pings.
    deadline = time.monotonic() + 15
    while True:
        response = Client().get("/healthz")
        body = response.json()
        if response.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db  # the test database must exist for the other process to reach it
def test_it_names_the_worker_when_none_answers(tmp_path) -> None:
    """In a process of its own, against a Redis no worker listens on (the Celery app keeps
    state per broker, so the broker is not swapped inside this process)."""
    redis_server = start_embedded_redis(tmp_path / "lonely.sock")
    try:
        env = stack_env(REDIS_URL=f"unix://{tmp_path / 'lonely.sock'}")
        script = "import json; from workbench.lib.health import health_report as h; " \
                 "print(json.dumps(h()))"  # fmt: skip
        out = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script], env=env, cwd=BASE_DIR,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        redis_server.kill()
    healthy, body = json.loads(out.stdout.strip().splitlines()[-1])
    assert not healthy
    assert body["failing"] == ["worker"]
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


@pytest.mark.django_db
def test_it_names_redis_when_it_is_down(settings, tmp_path) -> None:
    settings.REDIS_URL = f"unix://{tmp_path}/nothing-listens-here.sock"
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert body["failing"] == ["redis", "worker"]
    assert body["checks"]["database"]["ok"]


def test_it_names_the_database_when_it_is_down(settings) -> None:
    # No database access is granted to this test: any query fails, as a dead server would.
    response = Client().get("/healthz")
    body = response.json()
    assert response.status_code == 503
    assert "database" in body["failing"]
