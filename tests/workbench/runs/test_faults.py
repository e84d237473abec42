"""Provider faults on one member, against the real stack (daphne, a Celery worker, Redis, the
database) and a loopback upstream speaking the OpenAI wire format. Each fault ends with the
right candidate status and a readable reason; the other member and the verdict are unaffected;
the call table is true."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.workbench.runs.helpers import start_run, wait_for_end
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.stack import Stack, free_port
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.models import CandidateStatus, RunStatus

pytestmark = pytest.mark.slow

KEY = "sk-fault-test-0123456789abcdef"
HEALTHY = "sim-fast@ttft=0.01,tps=0,tokens=20"


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream(valid_keys=[KEY])
    up.start_in_thread()
    yield up
    up.stop_thread()


def _pool(workspace, user, base_url: str, model: str, *, max_tokens: int | None = None):
    sim = credential_create(
        workspace=workspace, user=user, provider="simulated", label="sim", scope=Scope.WORKSPACE
    )
    remote = credential_create(
        workspace=workspace, user=user, provider="openai_compatible", label="loopback",
        scope=Scope.WORKSPACE, base_url=base_url, keys=[KEY],
    )  # fmt: skip
    return pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name=f"faults {model}",
            members=[
                MemberInput(credential_id=sim.pk, model=HEALTHY, custom_model=True),
                MemberInput(
                    credential_id=remote.pk, model=model, custom_model=True, max_tokens=max_tokens
                ),
            ],
            judge=JudgeInput(
                credential_id=sim.pk, model="sim-judge@ttft=0.01,tps=0", custom_model=True
            ),
        ),
    )


def _run_with_fault(live_stack, upstream, alice, workspace, model, *scripts, **pool_options):
    if scripts:
        upstream.script(model, *scripts)
    pool = _pool(workspace, alice, f"{upstream.url}/v1", model, **pool_options)
    run = wait_for_end(start_run(pool, alice), timeout=60)
    assert run.status == RunStatus.FINISHED, run.error
    healthy = run.candidates.get(member="m1")
    assert healthy.status == CandidateStatus.DONE, "the other member is unaffected"
    assert run.winner == "m1" and run.verdict, "the verdict stands on the healthy member"
    faulty = run.candidates.get(member="m2")
    call = run.calls.get(candidate="m2")
    total = sum((c.cost for c in run.calls.all() if c.cost is not None), start=0)
    assert run.total_cost == total, "the run's total is the sum of its calls"
    return faulty, call


def test_it_retries_a_429_after_its_retry_after(live_stack: Stack, upstream, alice, workspace):
    faulty, call = _run_with_fault(
        live_stack, upstream, alice, workspace, "f429",
        Script(status=429, retry_after="1"), Script(tokens=5),
    )  # fmt: skip
    assert faulty.status == CandidateStatus.DONE
    assert call.attempts == 2 and call.status == "ok"


def test_it_fails_a_member_whose_provider_keeps_answering_500(
    live_stack: Stack, upstream, alice, workspace
):
    faulty, call = _run_with_fault(live_stack, upstream, alice, workspace, "f500",
                                   Script(status=500))  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert "500" in faulty.error and not faulty.permanent
    assert call.status == "failed" and call.attempts == 3


def test_it_fails_a_401_at_once_without_showing_the_key(
    live_stack: Stack, upstream, alice, workspace
):
    faulty, call = _run_with_fault(live_stack, upstream, alice, workspace, "f401",
                                   Script(status=401, echo_key=True))  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED and faulty.permanent
    assert "401" in faulty.error or "authentication" in faulty.error.lower()
    assert KEY not in faulty.error and KEY not in call.error
    assert call.key_label == "…" + KEY[-4:]


def test_it_fails_a_member_whose_server_refuses_connections(live_stack: Stack, alice, workspace):
    class Closed:
        url = f"http://127.0.0.1:{free_port()}"

    faulty, _call = _run_with_fault(live_stack, Closed, alice, workspace, "refused")
    assert faulty.status == CandidateStatus.FAILED
    assert "connect" in faulty.error.lower()


def test_it_fails_a_member_that_hangs_before_its_first_token(
    live_stack: Stack, upstream, alice, workspace
):
    faulty, _ = _run_with_fault(live_stack, upstream, alice, workspace, "fhang",
                                Script(fail="hang_headers"))  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert "first token" in faulty.error or "within" in faulty.error


def test_it_keeps_the_text_of_a_member_that_stalls_mid_stream(
    live_stack: Stack, upstream, alice, workspace
):
    faulty, call = _run_with_fault(live_stack, upstream, alice, workspace, "fstall",
                                   Script(tokens=20, fail="hang", fail_after=5))  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert faulty.text, "what streamed before the stall is kept"
    assert call.attempts == 1, "no retry after the first token: nothing is spliced"


def test_it_fails_a_truncated_stream(live_stack: Stack, upstream, alice, workspace):
    faulty, _ = _run_with_fault(live_stack, upstream, alice, workspace, "ftrunc",
                                Script(tokens=20, fail="truncate", fail_after=8))  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert "finish" in faulty.error.lower() or "truncat" in faulty.error.lower()


def test_it_fails_a_stream_with_malformed_json(live_stack: Stack, upstream, alice, workspace):
    faulty, _ = _run_with_fault(live_stack, upstream, alice, workspace, "fjson",
                                Script(tokens=20, fail="malformed", fail_after=3))  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert "json" in faulty.error.lower() or "unreadable" in faulty.error.lower()


def test_it_fails_on_an_error_event_inside_a_200_stream(
    live_stack: Stack, upstream, alice, workspace
):
    faulty, _ = _run_with_fault(
        live_stack, upstream, alice, workspace, "fevent",
        Script(tokens=20, fail="stream_error", fail_after=4, error_status=400,
               error_message="content policy says no"),
    )  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert "content policy says no" in faulty.error


def test_it_cuts_an_endless_stream_past_max_tokens(live_stack: Stack, upstream, alice, workspace):
    faulty, call = _run_with_fault(
        live_stack, upstream, alice, workspace, "fendless",
        Script(fail="endless", delay_s=0.001), max_tokens=50,
    )  # fmt: skip
    assert faulty.status == CandidateStatus.FAILED
    assert "max_tokens" in faulty.error
    assert call.output_tokens < 1000
