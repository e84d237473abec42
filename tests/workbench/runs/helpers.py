"""Building pools and runs for execution tests, and watching them over a real websocket."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from django.test import Client
from websockets.sync.client import connect

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.models import Mode, Pool
from workbench.pools.services import pool_create, pool_freeze
from workbench.runs.models import Run
from workbench.runs.services import run_create


def simulated_pool(
    workspace: Workspace,
    user: User,
    models: list[str],
    *,
    judge: str | None = "sim-judge@ttft=0.01,tps=0",
    mode: str = Mode.BEST_OF,
    rounds: int = 1,
    **extra: Any,
) -> Pool:
    credential = credential_create(
        workspace=workspace, user=user, provider="simulated", label=f"sim {time.monotonic_ns()}",
        scope=Scope.WORKSPACE,
    )  # fmt: skip
    return pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name=f"pool {time.monotonic_ns()}",
            mode=mode,
            rounds=rounds,
            members=[
                MemberInput(credential_id=credential.pk, model=m, custom_model=True) for m in models
            ],
            judge=JudgeInput(credential_id=credential.pk, model=judge, custom_model=True)
            if judge
            else None,
            **extra,
        ),
    )


def start_run(pool: Pool, user: User, prompt: str = "What is 2 + 2?") -> Run:
    return run_create(
        workspace=pool.workspace, user=user, config=pool_freeze(pool), prompt=prompt, pool=pool
    )


def wait_for_end(run: Run, timeout: float = 30) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_terminal:
            return run
        time.sleep(0.05)
    raise AssertionError(f"run still {run.status} after {timeout} s")


def session_headers(user: User, base_url: str) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    cookie = client.cookies["sessionid"].value
    return {"Cookie": f"sessionid={cookie}", "Origin": base_url}


def watch(ws_url: str, run: Run, headers: dict[str, str], timeout: float = 30) -> Iterator[dict]:
    """Yield the run's websocket messages until its terminal event."""
    with connect(f"{ws_url}/ws/runs/{run.pk}/", additional_headers=headers, open_timeout=10) as ws:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            yield message
            if message["type"] in ("run.finished", "run.failed", "run.cancelled"):
                return
            if message["type"] == "run.snapshot" and message["state"]["run"]["status"] in (
                "finished", "finished_without_verdict", "failed", "cancelled"
            ):  # fmt: skip
                return


class Rebuilt:
    """Client-side state, rebuilt from snapshots and events exactly as the page does it."""

    def __init__(self) -> None:
        self.seq = 0
        self.texts: dict[str, str] = {}
        self.status = ""
        self.snapshots = {"full": 0, "light": 0}

    def apply(self, message: dict) -> None:
        kind = message["type"]
        if kind == "run.snapshot":
            parts = message["state"]["parts"]
            if message.get("light"):
                # Only sent when the client holds exactly this seq: its texts must fit.
                assert message["seq"] == self.seq, (message["seq"], self.seq)
                held = {p: len(self.texts.get(p, "")) for p in parts}
                assert held == {p: d["chars"] for p, d in parts.items()}, "light snapshot"
                assert all("text" not in d for d in parts.values())
                self.snapshots["light"] += 1
            else:
                self.texts = {p: d.get("text", "") for p, d in parts.items()}
                self.snapshots["full"] += 1
            self.seq = message["seq"]
            self.status = message["state"]["run"].get("status", "")
            return
        assert message["seq"] == self.seq + 1, f"gap: {self.seq} -> {message['seq']}"
        self.seq = message["seq"]
        if kind == "candidate.started":
            self.texts[f"{message['candidate']}/{message['round']}"] = ""
        elif kind == "candidate.delta":
            part = f"{message['candidate']}/{message['round']}"
            self.texts[part] = self.texts.get(part, "") + message["text"]
        elif kind == "judge.started":
            self.texts[f"{message['judge']}/{message['phase']}"] = ""
        elif kind == "judge.delta":
            part = f"{message['judge']}/{message['phase']}"
            self.texts[part] = self.texts.get(part, "") + message["text"]
        elif kind.startswith("run."):
            self.status = kind.removeprefix("run.")
