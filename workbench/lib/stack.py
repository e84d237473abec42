"""The real stack as subprocesses: daphne (HTTP + websockets) and Celery workers, pointed at
the database this process is using and its Redis. End-to-end tests and ``workbench.bench``
start it; the data they use must be committed, since the subprocesses see only that.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings as django_settings
from django.db import connection

BASE_DIR = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """A DATABASE_URL for the database this process is using right now (the test one, say)."""
    settings = connection.settings_dict
    if settings["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{settings['NAME']}"
    user = settings.get("USER") or ""
    password = f":{settings['PASSWORD']}" if settings.get("PASSWORD") else ""
    host = settings.get("HOST") or "127.0.0.1"
    port = settings.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{settings['NAME']}"


def stack_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        PYTHONUNBUFFERED="1",
        FUSION_REAPER_STALE_S=env.get("FUSION_REAPER_STALE_S", "120"),
        # DATABASE_URL alone would make the subprocesses production-shaped (hashed static
        # files that were never collected: every page a 500); keep this process's shape.
        FUSION_EMBEDDED="true" if django_settings.EMBEDDED else "false",
    )
    # Short provider timeouts so fault tests (a hang, a stall) end in seconds, not minutes.
    env.setdefault("FUSION_FIRST_TOKEN_TIMEOUT_S", "3")
    env.setdefault("FUSION_IDLE_TIMEOUT_S", "3")
    env.update(extra)
    return env


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its children), as a crash would."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_worker(log_dir: Path, name: str = "test", **extra_env: str) -> Worker:
    log_path = log_dir / f"worker-{name}-{time.monotonic_ns()}.log"
    handle = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workbench", "worker", "--loglevel", "INFO",
         "--pool", "threads", "--concurrency", extra_env.pop("WORKER_THREADS", "8"),
         "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"{name}-{os.getpid()}-{time.monotonic_ns()}@%h"],
        cwd=BASE_DIR, env=stack_env(**extra_env), stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    worker = Worker(process, log_path)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited:\n{worker.log()[-3000:]}")
        if " ready." in worker.log():
            return worker
        time.sleep(0.1)
    worker.kill()
    raise RuntimeError(f"celery worker did not start:\n{worker.log()[-3000:]}")


@dataclass
class Stack:
    url: str
    ws_url: str
    log_dir: Path
    daphne: subprocess.Popen[bytes]
    worker: Worker
    extra_workers: list[Worker] = field(default_factory=list)

    def start_worker(self, name: str = "extra", **extra_env: str) -> Worker:
        worker = start_worker(self.log_dir, name, **extra_env)
        self.extra_workers.append(worker)
        return worker

    def workers(self) -> list[Worker]:
        return [self.worker, *self.extra_workers]

    def worker_logs(self) -> str:
        return "".join(worker.log() for worker in self.workers())

    def stop(self) -> None:
        for worker in [self.worker, *self.extra_workers]:
            worker.stop()
        if self.daphne.poll() is None:
            self.daphne.terminate()
            try:
                self.daphne.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.daphne.kill()


def start_stack(log_dir: Path, *, worker_threads: int = 8) -> Stack:
    port = free_port()
    log_path = log_dir / "daphne.log"
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
         "workbench.asgi:application"],
        cwd=BASE_DIR, env=stack_env(), stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if daphne.poll() is not None:
            raise RuntimeError(f"daphne exited:\n{log_path.read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            time.sleep(0.1)
    worker = start_worker(log_dir, "main", WORKER_THREADS=str(worker_threads))
    return Stack(
        url=f"http://127.0.0.1:{port}",
        ws_url=f"ws://127.0.0.1:{port}",
        log_dir=log_dir,
        daphne=daphne,
        worker=worker,
    )
