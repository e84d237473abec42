"""``make run`` (``python -m workbench.serve``) as a new user meets it: it starts everything,
prints a login that works, stops every process it started on Ctrl-C, and the next start
reuses what is there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from workbench.lib.stack import BASE_DIR, free_port

# What tests/_services.py and CI set for the test process; `make run` has none of it.
_NOT_FROM_A_SHELL = {
    "DATABASE_URL", "REDIS_URL", "SECRET_KEY", "FUSION_ENCRYPTION_KEYS", "ALLOWED_HOSTS",
    "FUSION_PRIVATE_HOSTS_ALLOWED", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "BEHIND_TLS_PROXY", "FUSION_STATIC_MANIFEST", "FUSION_EMBEDDED",
    "DJANGO_SETTINGS_MODULE", "DJANGO_ALLOW_ASYNC_UNSAFE", "FUSION_VAR_DIR", "PORT",
}  # fmt: skip


class Serve:
    def __init__(self, var_dir: Path, port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _NOT_FROM_A_SHELL}
        env.update(FUSION_VAR_DIR=str(var_dir), PORT=str(port), PYTHONUNBUFFERED="1",
                   WORKER_CONCURRENCY="2")  # fmt: skip
        self.url = f"http://127.0.0.1:{port}"
        self.log = var_dir.parent / f"serve-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workbench.serve"], cwd=BASE_DIR, env=env,
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT,
            start_new_session=True,  # a process group of its own, as a terminal gives it
        )  # fmt: skip

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 60) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := re.search(pattern, self.output(), re.M):
                return found
            assert self.process.poll() is None, f"serve exited:\n{self.output()[-3000:]}"
            time.sleep(0.1)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output()[-3000:]}")

    def descendants(self) -> dict[int, str]:
        """Every process below serve, by pid, with its command line."""
        found: dict[int, str] = {}
        todo = [self.process.pid]
        while todo:
            pid = todo.pop()
            for task in Path(f"/proc/{pid}/task").glob("*"):
                with suppress(OSError):  # a process may exit while it is being looked at
                    for child in map(int, (task / "children").read_text().split()):
                        cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
                        found[child] = cmdline.replace(b"\0", b" ").decode(errors="replace")
                        todo.append(child)
        return found

    def stop(self, signum: int) -> int:
        """Signal serve alone (as `kill` does): it must stop its children itself."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=60)

    def ctrl_c(self) -> int:
        """What Ctrl-C in a terminal does: SIGINT to every process of the group at once."""
        os.killpg(self.process.pid, signal.SIGINT)
        return self.process.wait(timeout=60)

    def kill(self) -> None:
        for pid in self.descendants():
            _kill(pid)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _kill(pid: int) -> None:
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent has yet to reap it


@contextmanager
def serving(var_dir: Path) -> Iterator[Serve]:
    serve = Serve(var_dir, free_port())
    try:
        yield serve
    finally:
        serve.kill()  # only when a test failed half-way: a passing test stopped it already


def _password(serve: Serve) -> str:
    return serve.wait_for(r"^  password:  (\S+)$", timeout=150).group(1)


def _log_in(url: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=20) as client:
        form = client.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:500]
        response = client.post(
            "/login/",
            data={"username": "demo", "password": password, "csrfmiddlewaretoken": token[1]},
        )
        home = client.get("/", follow_redirects=True)
    assert home.status_code == 200
    return response


def _wait_healthy(url: str, serve: Serve, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.process.poll() is None, serve.output()[-3000:]
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"/healthz never said 200:\n{serve.output()[-3000:]}")


@pytest.mark.slow
def test_it_starts_everything_and_stops_everything(tmp_path: Path) -> None:
    var_dir = tmp_path / "var"
    with serving(var_dir) as serve:
        password = _password(serve)
        _wait_healthy(serve.url, serve)
        response = _log_in(serve.url, password)
        assert response.status_code == 302, response.text[:500]
        assert response.headers["Location"] == "/"

        children = serve.descendants()
        names = " | ".join(children.values())
        for part in ("daphne", "celery", "redis-server"):
            assert part in names, names
        assert serve.stop(signal.SIGINT) == 0
        assert [cmd for pid, cmd in children.items() if _alive(pid)] == []
        assert "stopping…" in serve.output()

    # The second start reuses the database and the password, and a stop while it is still
    # starting leaves nothing running either.
    with serving(var_dir) as serve:
        assert _password(serve) == password
        children = serve.descendants()
        assert serve.stop(signal.SIGTERM) == 0
        assert [cmd for pid, cmd in children.items() if _alive(pid)] == []


@pytest.mark.parametrize("stop", ["kill", "ctrl-c"])
def test_it_stops_the_embedded_redis_when_stopped_during_migrate(tmp_path: Path, stop: str) -> None:
    with serving(tmp_path / "var") as serve:
        serve.wait_for(r"^embedded redis on ")
        children = serve.descendants()
        assert any("redis-server" in cmd for cmd in children.values()), children
        assert (serve.stop(signal.SIGTERM) if stop == "kill" else serve.ctrl_c()) == 0
        assert [cmd for pid, cmd in children.items() if _alive(pid)] == []
        assert "Fusion Workbench is starting" not in serve.output()
        assert "failed" not in serve.output()  # an interrupted step is a stop, not an error


def test_it_names_the_process_that_died(tmp_path: Path) -> None:
    """A child that exits stops the rest, and the message says which one it was."""
    with serving(tmp_path / "var") as serve:
        serve.wait_for(r"^embedded redis on ")
        redis = next(pid for pid, cmd in serve.descendants().items() if "redis-server" in cmd)
        _kill(redis)
        assert serve.process.wait(timeout=60) == 1
        assert "stopping: redis exited (killed by SIGKILL)" in serve.output()
