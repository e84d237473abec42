"""``make run``: the whole workbench in one terminal.

Starts an embedded Redis (unless ``REDIS_URL`` is set), migrates, seeds the demo workspace,
then runs daphne (HTTP + websockets) and a Celery worker side by side. Ctrl-C (or SIGTERM)
stops them all, at any point, the start-up steps included. It deliberately does not import
Django: the children read their settings from the environment this process prepares.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

BASE_DIR = Path(__file__).resolve().parent.parent
# Threads, not processes: they hand runs to the worker process's one engine loop, so one
# process streams many runs at once (see workbench/runs/engine_loop.py).
DEFAULT_WORKER_CONCURRENCY = "20"


class Supervisor:
    """The child processes, by name, and the stop request a signal makes.

    The signal handler only records the request (and kills outright on a second one); every
    wait polls for it. So a signal never lands between starting a child and recording it, and
    one that comes during migrate or seed stops what was already started, Redis included.
    """

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.stop_requested = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_requested:  # a second Ctrl-C: do not wait for a graceful stop
            for _, child in self.children:
                if child.poll() is None:
                    child.kill()
        self.stop_requested = True

    def add(self, name: str, child: subprocess.Popen[bytes]) -> subprocess.Popen[bytes]:
        self.children.append((name, child))
        return child

    def spawn(self, name: str, args: list[str]) -> subprocess.Popen[bytes]:
        return self.add(name, subprocess.Popen(args, cwd=BASE_DIR))

    def run_step(self, name: str, args: list[str]) -> bool:
        """Run a start-up step to its end; False when a stop was requested meanwhile."""
        if self.stop_requested:
            return False
        child = self.spawn(name, args)
        while child.poll() is None:
            if self.stop_requested:
                return False
            # Redis died while migrating, say. (The flag is read after dead(): Ctrl-C stops
            # Redis too, and its handler has run by then.)
            if (dead := self.dead(but=child)) and not self.stop_requested:
                raise StepFailed("; ".join(dead))
            time.sleep(0.1)
        self.children.remove((name, child))
        if self.stop_requested:  # Ctrl-C reached the step too, which then failed: no error
            return False
        if child.returncode != 0:
            raise StepFailed(f"{name} failed ({_how(child.returncode)})")
        return True

    def dead(self, *, but: subprocess.Popen[bytes] | None = None) -> list[str]:
        """How each child that is no longer running ended, e.g. "redis exited (status 1)"."""
        return [
            f"{name} exited ({_how(child.returncode)})"
            for name, child in self.children
            if child is not but and child.poll() is not None
        ]

    def stop_all(self) -> None:
        """Stop the app processes first, Redis last: a worker shutting down still acks."""
        redis = [(n, c) for n, c in self.children if n == "redis"]
        app = [(n, c) for n, c in self.children if n != "redis"]
        for group in (app, redis):
            for _, child in group:
                if child.poll() is None:
                    child.terminate()
            for _, child in group:
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


_PREPARE = """
import os, django
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("seed_demo")
"""


class StepFailed(Exception):
    pass


def _how(returncode: int) -> str:
    if returncode < 0:
        return f"killed by {signal.Signals(-returncode).name}"
    return f"status {returncode}"


def main() -> int:
    var_dir = Path(os.environ.get("FUSION_VAR_DIR", BASE_DIR / "var"))
    var_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = os.environ.get("PORT", "8000")
    host = os.environ.get("HOST", "127.0.0.1")
    python = sys.executable
    supervisor = Supervisor()
    # Before the first child: a signal from here on stops everything started so far.
    signal.signal(signal.SIGINT, supervisor.on_signal)
    signal.signal(signal.SIGTERM, supervisor.on_signal)

    try:
        if not os.environ.get("REDIS_URL"):
            sys.path.insert(0, str(BASE_DIR))
            from workbench.lib.embedded_redis import start_embedded_redis

            socket = var_dir / "redis.sock"
            supervisor.add("redis", start_embedded_redis(socket, log_path=var_dir / "redis.log"))
            os.environ["REDIS_URL"] = f"unix://{socket}"
            print(f"embedded redis on {socket}", flush=True)

        # `manage.py migrate` then `manage.py seed_demo`, in one process: setting Django up
        # costs seconds of CPU, and this is the wait before the page opens.
        if not supervisor.run_step("migrate and seed_demo", [python, "-c", _PREPARE]):
            print("\nstopping…", flush=True)
            return 0
        supervisor.spawn(
            "celery worker",
            # Warnings and errors only: at INFO the periodic tasks would fill the terminal.
            [python, "-m", "celery", "-A", "workbench", "worker",
             "--loglevel", os.environ.get("WORKER_LOG_LEVEL", "WARNING"),
             "--pool", "threads",
             "--concurrency", os.environ.get("WORKER_CONCURRENCY", DEFAULT_WORKER_CONCURRENCY),
             "--without-gossip", "--without-mingle", "-n", "worker@%h",
             # Embedded beat: the periodic reaper of runs whose worker died.
             "--beat", "--schedule", str(var_dir / "celerybeat-schedule")],
        )  # fmt: skip
        supervisor.spawn(
            "daphne",
            [python, "-m", "daphne", "-b", host, "-p", port, "workbench.asgi:application"],
        )
        print(
            f"\n  Fusion Workbench is starting at http://{host}:{port}  (Ctrl-C stops it)\n",
            flush=True,
        )
        while not supervisor.stop_requested:
            if (dead := supervisor.dead()) and not supervisor.stop_requested:
                print(f"stopping: {'; '.join(dead)}", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.5)
        print("\nstopping…", flush=True)
        return 0
    except StepFailed as failure:
        print(f"stopping: {failure}", file=sys.stderr, flush=True)
        return 1
    finally:
        supervisor.stop_all()


if __name__ == "__main__":
    sys.exit(main())
