"""Tokens, credentials and in-process requests for gateway tests.

``post`` drives the real ASGI-facing views through Django's ``AsyncClient`` in the test's own
event loop, so a single-model call (which runs in the web process) needs no server; a fusion
run needs a worker, which ``eager_runs`` replaces by executing runs where they are created.
Tests using either need ``django_db(transaction=True)``: the recorder writes from its threads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.test import AsyncClient

from fusion.testing.upstream import Upstream
from workbench.accounts.models import User, Workspace
from workbench.celery import app as celery_app
from workbench.keys.models import Credential, Scope
from workbench.keys.services import credential_create
from workbench.tokens.services import token_create

FAST = "sim-fast@ttft=0.01,tps=400,tokens=20"
PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


def token_for(user: User, workspace: Workspace) -> str:
    return token_create(workspace=workspace, user=user, name="test")[1]


def sim_credential(workspace: Workspace, user: User, label: str | None = None) -> Credential:
    return credential_create(
        workspace=workspace, user=user, provider="simulated",
        label=label or f"sim{time.monotonic_ns()}", scope=Scope.WORKSPACE,
    )  # fmt: skip


def remote_credential(
    workspace: Workspace, user: User, base_url: str, keys: list[str], label: str = "remote"
) -> Credential:
    """An OpenAI-compatible credential pointing at a loopback ``Upstream``."""
    return credential_create(
        workspace=workspace, user=user, provider="openai_compatible", label=label,
        scope=Scope.WORKSPACE, base_url=f"{base_url}/v1", keys=keys,
    )  # fmt: skip


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def text(self) -> str:
        return self.raw.decode()


async def send(path: str, body: dict[str, Any], token: str, *, api_key_header: bool = False) -> Any:
    """POST a JSON body as a client would; the response, its stream not read yet."""
    headers = {"x-api-key": token} if api_key_header else {"authorization": f"Bearer {token}"}
    return await AsyncClient().post(
        path, data=json.dumps(body), content_type="application/json", headers=headers
    )


async def post(
    path: str, body: dict[str, Any], token: str, *, api_key_header: bool = False
) -> Reply:
    """POST a JSON body as a client would and read the whole answer, stream or not, raw."""
    response = await send(path, body, token, api_key_header=api_key_header)
    if response.streaming:
        raw = b"".join([chunk async for chunk in response.streaming_content])
    else:
        raw = response.content
    return Reply(response.status_code, dict(response.items()), raw)


def sse_frames(raw: bytes) -> list[str]:
    """The server-sent events of a body, one string per event, exactly as sent."""
    text = raw.decode()
    assert text.endswith("\n\n"), "every event ends with a blank line"
    return text[:-2].split("\n\n")


@contextmanager
def serving(upstream: Upstream) -> Iterator[Upstream]:
    """A loopback upstream answering from a thread of its own while the block runs."""
    upstream.start_in_thread()
    try:
        yield upstream
    finally:
        upstream.stop_thread()


@contextmanager
def eager_runs() -> Iterator[None]:
    """Execute each run in this process as its transaction commits, instead of in a worker."""
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = False
