"""A key echoed back by a careless upstream never reaches anyone: not the websocket events of the
run, its stored errors, the API, the pages, the exports, nor the logs of daphne, the worker
or this process. Against the real stack (``live_stack``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from django.test import Client

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.security.leaks import assert_key_absent, stack_logs
from tests.workbench import conftest as people
from tests.workbench.runs.helpers import session_headers, start_run, wait_for_end, watch
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.stack import Stack
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.models import CandidateStatus, RunStatus

pytestmark = pytest.mark.slow

KEY = "sk-LEAKCANARY-runs-0123456789abcdef-Z9Y8"
_fast_and_isolated = people._fast_and_isolated
make_user, alice, workspace = people.make_user, people.alice, people.workspace


def _assert_clean(where: str, text: str) -> None:
    assert_key_absent(KEY, "LEAKCANARY", where, text)


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(valid_keys=[KEY])
    up.start_in_thread()
    yield up
    up.stop_thread()


def test_it_keeps_an_echoed_key_out_of_events_errors_exports_and_logs(
    live_stack: Stack,
    upstream: Upstream,
    alice: User,
    workspace: Workspace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Permanent (400) on one member, and a judge that fails the same way: both errors echo.
    upstream.script("leaky", Script(status=400, echo_key=True, error_message="bad request"))
    # And one that fails mid-stream, after some text, with the key in the stream's error event.
    upstream.script(
        "leaky-stream",
        Script(
            tokens=30, fail="stream_error", fail_after=3, error_status=400, echo_key=True,
            error_message="stream broke",
        ),
    )  # fmt: skip
    sim = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="sim", scope=Scope.WORKSPACE
    )
    remote = credential_create(
        workspace=workspace, user=alice, provider="openai_compatible", label="careless",
        scope=Scope.WORKSPACE, base_url=f"{upstream.url}/v1", keys=[KEY],
    )  # fmt: skip
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="leak check",
            members=[
                MemberInput(
                    credential_id=sim.pk, model="sim-fast@ttft=0.3,tps=0", custom_model=True
                ),
                MemberInput(credential_id=remote.pk, model="leaky", custom_model=True),
                MemberInput(credential_id=remote.pk, model="leaky-stream", custom_model=True),
            ],
            judge=JudgeInput(
                credential_id=sim.pk, model="sim-judge@ttft=0.01,tps=0", custom_model=True
            ),
        ),
    )

    run = start_run(pool, alice)
    events = list(watch(live_stack.ws_url, run, session_headers(alice, live_stack.url)))
    run = wait_for_end(run, timeout=60)

    # The fault happened as scripted: the key went upstream and came back in the error.
    assert upstream.requests_for("leaky")[0].headers.get("authorization") == f"Bearer {KEY}"
    leaky = run.candidates.get(member="m2")
    assert leaky.status == CandidateStatus.FAILED and "bad request" in leaky.error
    broken = run.candidates.get(member="m3")
    assert broken.status == CandidateStatus.FAILED and "stream broke" in broken.error
    assert run.status in (RunStatus.FINISHED, RunStatus.FINISHED_WITHOUT_VERDICT)
    assert any(e["type"] == "candidate.failed" for e in events) or any(
        e["type"] == "run.snapshot" and "m2/0" in json.dumps(e) for e in events
    )

    _assert_clean("the websocket events", json.dumps(events))
    stored = [c.error for c in run.candidates.all()] + [c.error for c in run.calls.all()]
    _assert_clean("the stored errors", json.dumps([run.error, stored, run.verdict]))

    client = Client()
    client.force_login(alice)
    ws = workspace.slug
    for url in (
        f"/api/v1/workspaces/{ws}/runs/{run.pk}",
        f"/api/v1/workspaces/{ws}/runs",
        f"/w/{ws}/runs/{run.pk}/",
        f"/w/{ws}/runs/{run.pk}/panels/",
        f"/w/{ws}/runs/{run.pk}/part/?key=m2/0",
        f"/w/{ws}/runs/{run.pk}/curation/",
        f"/w/{ws}/usage/",
    ):
        response = client.get(url)
        assert response.status_code in (200, 404), (url, response.status_code)
        _assert_clean(url, response.content.decode())
    for kind in ("chat", "pairs", "csv"):
        url = f"/w/{ws}/curation/export/?download=1&format={kind}"
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        _assert_clean(f"the {kind} export", b"".join(response.streaming_content).decode())

    for name, text in stack_logs(live_stack).items():
        _assert_clean(f"the log {name}", text)
    _assert_clean("this process's log", caplog.text)
