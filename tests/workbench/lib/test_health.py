"""GET /healthz: 200 only when the database, Redis and a worker answer; else 503 naming what
is down."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client

from tests.workbench.lib.test_deploy import SERVICES
from tests.workbench.lib.test_settings import _TEST_ONLY, PRODUCTION
from workbench.lib.embedded_redis import start_embedded_redis
from workbench.lib.stack import BASE_DIR, Stack, free_port


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


PRODUCTION_HOST = "fusion.example.com"


@pytest.fixture(scope="module")
def production_web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """daphne with production settings (no FUSION_EMBEDDED, SSL redirect, proxy header,
    ALLOWED_HOSTS) against a database and a Redis that no worker listens on."""
    tmp = tmp_path_factory.mktemp("production-web")
    redis_server = start_embedded_redis(tmp / "lonely.sock")
    port = free_port()
    env = _production_env(
        DATABASE_URL=f"sqlite:///{tmp / 'db.sqlite3'}",
        REDIS_URL=f"unix://{tmp / 'lonely.sock'}",
    )
    log = tmp / "daphne.log"
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "workbench.asgi:application"],
        cwd=BASE_DIR, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert daphne.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "daphne did not start"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        daphne.terminate()
        daphne.wait(timeout=10)
        redis_server.kill()


def _production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY and k not in PRODUCTION}
    env.update(PRODUCTION, ALLOWED_HOSTS=PRODUCTION_HOST, PYTHONUNBUFFERED="1", **extra)
    return env


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _get(address: str, path: str, **headers: str) -> tuple[int, dict[str, Any], str]:
    connection = http.client.HTTPConnection(address, timeout=30)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        body = response.read().decode()
        return response.status, dict(response.getheaders()), body
    finally:
        connection.close()


def test_it_passes_the_containers_health_check_in_production(production_web: str) -> None:
    """The command compose.yaml runs in the web container, as it runs there."""
    port = production_web.split(":")[1]
    argv = SERVICES["web"]["healthcheck"]["test"][1:]
    assert argv[0] == "python"
    env = _production_env(PORT=port)
    result = subprocess.run([sys.executable, *argv[1:]], env=env, cwd=BASE_DIR,
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"scope": "web"' in result.stdout

    # Asking for the workers too fails here: none listens on this Redis.
    result = subprocess.run([sys.executable, *argv[1:3], "--scope", "all"], env=env,
                            cwd=BASE_DIR, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "worker" in result.stdout


def test_it_answers_health_probes_without_the_tls_proxy(production_web: str) -> None:
    # What the old compose check sent: the address as host, so Django refused it.
    assert _get(production_web, "/healthz?scope=web", Host="127.0.0.1")[0] == 400
    # A load balancer probing over plain HTTP with the right host is not redirected...
    status, _, body = _get(production_web, "/healthz?scope=web", Host=PRODUCTION_HOST)
    assert status == 200, body
    # ...while every other page still is.
    status, headers, _ = _get(production_web, "/login/", Host=PRODUCTION_HOST)
    assert status == 301
    assert headers["Location"] == f"https://{PRODUCTION_HOST}/login/"


def test_it_names_the_worker_when_none_answers(production_web: str) -> None:
    status, _, raw = _get(production_web, "/healthz", Host=PRODUCTION_HOST)
    body = json.loads(raw)
    assert status == 503
    assert body["failing"] == ["worker"]
    assert body["checks"]["worker"] == {"ok": False, "error": "no worker answered"}
    assert body["checks"]["database"]["ok"] and body["checks"]["redis"]["ok"]


@pytest.mark.django_db
def test_it_leaves_the_worker_out_of_the_web_scope(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.celery import app

    def no_ping(**_: Any) -> list[Any]:
        raise AssertionError("the web scope must not ask the workers")

    monkeypatch.setattr(app.control, "ping", no_ping)
    response = Client().get("/healthz?scope=web")
    assert response.status_code == 200
    assert set(response.json()["checks"]) == {"database", "redis"}


def test_it_refuses_an_unknown_scope(client: Client) -> None:
    response = client.get("/healthz?scope=everything")
    assert response.status_code == 400
    assert "scope must be one of all, web" in response.json()["error"]


@pytest.mark.django_db
def test_it_stops_waiting_at_the_first_worker_that_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Celery's ping waits out its whole timeout for more replies unless given a limit."""
    from workbench.celery import app

    calls: list[dict[str, Any]] = []

    def ping(**kwargs: Any) -> list[Any]:
        calls.append(kwargs)
        return [{"worker@a": {"ok": "pong"}}]

    monkeypatch.setattr(app.control, "ping", ping)
    response = Client().get("/healthz")
    assert response.status_code == 200, response.json()
    assert calls == [{"timeout": 1.0, "limit": 1}]


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
