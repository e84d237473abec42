"""``make run``: the whole workbench in one terminal.

Starts an embedded Redis (unless ``REDIS_URL`` is set), migrates, seeds the demo workspace,
then runs daphne (HTTP + websockets) and a Celery worker side by side. Ctrl-C stops them all.
It deliberately does not import Django: the children read their settings from the
environment this process prepares.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _run(args: list[str]) -> None:
    subprocess.run(args, check=True, cwd=BASE_DIR)


def main() -> int:
    var_dir = Path(os.environ.get("FUSION_VAR_DIR", BASE_DIR / "var"))
    var_dir.mkdir(parents=True, exist_ok=True)
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    python = sys.executable
    children: list[subprocess.Popen[bytes]] = []

    if not os.environ.get("REDIS_URL"):
        sys.path.insert(0, str(BASE_DIR))
        from workbench.lib.embedded_redis import start_embedded_redis

        socket = var_dir / "redis.sock"
        children.append(start_embedded_redis(socket, log_path=var_dir / "redis.log"))
        os.environ["REDIS_URL"] = f"unix://{socket}"
        print(f"embedded redis on {socket}")

    def stop_all(*_: object) -> None:
        for child in reversed(children):
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()

    try:
        _run([python, "manage.py", "migrate", "--noinput", "-v", "0"])
        _run([python, "manage.py", "seed_demo"])
        children.append(
            subprocess.Popen(
                [python, "-m", "celery", "-A", "workbench", "worker", "--loglevel", "INFO",
                 # Threads hand runs to the process's one engine loop: one process streams
                 # many runs at once (see workbench/runs/engine_loop.py).
                 "--pool", "threads",
                 "--concurrency", os.environ.get("WORKER_CONCURRENCY", "20"), "--without-gossip",
                 "--without-mingle", "-n", "worker@%h",
                 # Embedded beat: the periodic reaper of runs whose worker died.
                 "--beat", "--schedule", str(var_dir / "celerybeat-schedule")],
                cwd=BASE_DIR,
            )
        )  # fmt: skip
        children.append(
            subprocess.Popen(
                [python, "-m", "daphne", "-b", host, "-p", port, "workbench.asgi:application"],
                cwd=BASE_DIR,
            )
        )
        print(f"\n  Fusion Workbench is starting at http://{host}:{port}  (Ctrl-C stops it)\n")
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child.args[2] for child in children if child.poll() is not None]
        print(f"stopping: a process exited ({failed})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
