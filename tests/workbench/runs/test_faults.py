"""Provider faults on one member, against the real stack (daphne, a Celery worker, Redis, the
database) and a loopback upstream speaking the OpenAI wire format, each fault in its own test.

The pool has two healthy simulated members, the faulty one last, and a simulated judge. Every
fault ends the same checks: the faulty candidate's status and a readable reason naming its
provider and model; the healthy candidates done with exactly the text they have without any
fault, and the judge's verdict exactly what it is without the faulty member (one reference run,
shared by the module); the call table true — one row per call (each member, the judge) with the
right status, error, attempts, tokens and cost — and the run's total the sum of its calls.
Wherever the fault has an error body, the upstream echoes the key into it, and the key appears
nowhere: not in the stored errors, the API's answer, nor the logs of daphne and the worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from fusion.redact import REDACTED
from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.security.leaks import assert_key_absent, stack_logs
from tests.workbench.runs.helpers import start_run, wait_for_end
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.stack import Stack, free_port
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.models import CandidateStatus, ProviderCall, Run, RunStatus

pytestmark = pytest.mark.slow

# Not shaped like any known key ("sk-…"), so only redacting the exact secret hides it.
KEY = "fw-FAULTCANARY-0123456789abcdef"
MARKER = "FAULTCANARY"
HEALTHY = ["sim-fast@ttft=0.01,tps=0,tokens=20", "sim-fast@ttft=0.01,tps=0,tokens=14"]
JUDGE = "sim-judge@ttft=0.01,tps=0"
LABEL = "loopback"  # the faulty member's credential, as people see it
_reference: dict[str, Any] = {}


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream(valid_keys=[KEY])
    up.start_in_thread()
    yield up
    up.stop_thread()


def _finished(workspace: Workspace, user: User, members: list[MemberInput], judge: int) -> Run:
    pool = pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name=f"faults {members[-1].model}",
            members=members,
            judge=JudgeInput(credential_id=judge, model=JUDGE, custom_model=True),
        ),
    )
    run = wait_for_end(start_run(pool, user), timeout=60)
    assert run.status == RunStatus.FINISHED, (run.status, run.error)
    return run


def _reference_run(workspace: Workspace, user: User, healthy: list[MemberInput], judge: int):
    """The healthy members and the judge with no faulty member: texts, verdict, calls; once."""
    if not _reference:
        run = _finished(workspace, user, healthy, judge)
        _reference["texts"] = {c.member: c.text for c in run.candidates.all()}
        _reference["verdict"] = run.verdict
        _reference["winner"] = run.winner
        _reference["calls"] = {c.candidate: _row(c) for c in run.calls.all()}
    return _reference


def _row(call: ProviderCall) -> tuple[Any, ...]:
    return (call.model, call.status, call.error, call.attempts, call.input_tokens,
            call.output_tokens, call.cost)  # fmt: skip


@dataclass(frozen=True)
class Fault:
    """What one fault must end in, for the faulty member (m3) and its call."""

    model: str
    scripts: tuple[Script, ...]
    status: str = CandidateStatus.FAILED
    reason: tuple[str, ...] = ()  # what the error says, beyond the provider and model
    permanent: bool = False
    attempts: int = 1
    streamed: bool = False  # text arrived before the fault: kept, with estimated tokens
    echoed: bool = False  # the error quotes the upstream's words, key included (redacted)
    options: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Any, ProviderCall], None] | None = None


def _endless_cut_past_max_tokens(faulty: Any, call: ProviderCall) -> None:
    assert 50 <= call.output_tokens < 1000, call.output_tokens


FAULTS = [
    Fault("f429", (Script(status=429, retry_after="1", echo_key=True), Script(tokens=5)),
          status=CandidateStatus.DONE, attempts=2),
    Fault("f500", (Script(status=500, echo_key=True),), reason=("server error", "HTTP 500"),
          attempts=3, echoed=True),
    Fault("f401", (Script(status=401, echo_key=True),), reason=("rejected", "HTTP 401"),
          permanent=True),
    Fault("refused", (), reason=("cannot connect",), attempts=3),
    Fault("fhang", (Script(fail="hang_headers"),), reason=("no first token within",), attempts=3),
    Fault("fstall", (Script(tokens=20, fail="hang", fail_after=5),),
          reason=("no token for", "idle timeout"), streamed=True),
    Fault("ftrunc", (Script(tokens=20, fail="truncate", fail_after=8),),
          reason=("without a finish reason",), streamed=True),
    Fault("fjson", (Script(tokens=20, fail="malformed", fail_after=3, echo_key=True),),
          reason=("malformed JSON",), permanent=True, streamed=True, echoed=True),
    Fault("fevent", (Script(tokens=20, fail="stream_error", fail_after=4, error_status=400,
                            error_message="content policy says no", echo_key=True),),
          reason=("content policy says no", "HTTP 400"), permanent=True, streamed=True,
          echoed=True),
    Fault("fendless", (Script(fail="endless", delay_s=0.001),), reason=("past max_tokens=50",),
          permanent=True, streamed=True, options={"max_tokens": 50},
          check=_endless_cut_past_max_tokens),
]  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS, ids=[f.model for f in FAULTS])
def test_it_isolates_a_provider_fault_to_its_member(
    fault: Fault,
    live_stack: Stack,
    upstream: Upstream,
    alice: User,
    workspace: Workspace,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sim = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="sim", scope=Scope.WORKSPACE
    )
    healthy = [MemberInput(credential_id=sim.pk, model=m, custom_model=True) for m in HEALTHY]
    reference = _reference_run(workspace, alice, healthy, sim.pk)
    if fault.model == "refused":
        base_url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    else:
        upstream.script(fault.model, *fault.scripts)
        base_url = f"{upstream.url}/v1"
    remote = credential_create(
        workspace=workspace, user=alice, provider="openai_compatible", label=LABEL,
        scope=Scope.WORKSPACE, base_url=base_url, keys=[KEY],
    )  # fmt: skip
    faulty_member = MemberInput(
        credential_id=remote.pk, model=fault.model, custom_model=True, **fault.options
    )
    run = _finished(workspace, alice, [*healthy, faulty_member], sim.pk)
    candidates = {c.member: c for c in run.candidates.all()}
    calls = list(run.calls.all())
    by_member = {c.candidate: c for c in calls}

    # The faulty member: its status, and a reason a person can read, naming provider and model.
    faulty, call = candidates["m3"], by_member["m3"]
    assert (faulty.provider, faulty.model) == (LABEL, fault.model)
    assert faulty.status == fault.status, faulty.error
    if fault.status == CandidateStatus.FAILED:
        for words in fault.reason:
            assert words in faulty.error, faulty.error
        assert faulty.permanent == fault.permanent, faulty.error
        assert bool(faulty.text) == fault.streamed, "what streamed before the fault is kept"
    else:
        assert faulty.error == "" and faulty.text and faulty.finish_reason == "stop"

    # The healthy members and the verdict: exactly as without the faulty member.
    assert {m: c.text for m, c in candidates.items() if m != "m3"} == reference["texts"]
    assert all(candidates[m].status == CandidateStatus.DONE for m in ("m1", "m2"))
    if fault.status == CandidateStatus.FAILED:
        assert (run.winner, run.verdict) == (reference["winner"], reference["verdict"])
    else:  # a retried 429 that then answered is a candidate like the others
        assert run.winner in candidates and set(run.verdict["scores"]) == set(candidates)

    # The call table: one row per call, each true.
    assert sorted(c.candidate for c in calls) == ["judge", "m1", "m2", "m3"], [
        str(c) for c in calls
    ]
    for member in ("m1", "m2"):
        row = by_member[member]
        assert _row(row) == reference["calls"][member] and row.status == "ok" and row.cost > 0
        healthy = candidates[member]
        assert (healthy.output_tokens, healthy.cost) == (row.output_tokens, row.cost)
    judge = by_member["judge"]
    assert judge.status == "ok" and judge.error == "" and judge.attempts == 1
    assert judge.input_tokens > 0 and judge.output_tokens > 0 and judge.cost > 0
    if fault.status == CandidateStatus.FAILED:
        assert _row(judge) == reference["calls"]["judge"], "the judge saw the same two answers"
    assert call.model == fault.model and call.attempts == fault.attempts
    if fault.model != "refused":
        assert len(upstream.requests_for(fault.model)) == call.attempts, "as the upstream saw it"
    assert call.key_label == "…" + KEY[-4:]
    if fault.status == CandidateStatus.FAILED:
        assert (call.status, call.error) == ("failed", faulty.error)
    else:
        assert (call.status, call.error) == ("ok", "")
    used = call.input_tokens or call.output_tokens
    assert bool(used) == (fault.streamed or fault.status == CandidateStatus.DONE)
    assert call.tokens_estimated == (fault.streamed and fault.status == CandidateStatus.FAILED)
    # The loopback model has no price: "unpriced" (None) once it used tokens, never a made-up $0.
    assert call.cost == (None if used else Decimal(0))
    total = sum((c.cost for c in calls if c.cost is not None), start=Decimal(0))
    assert run.total_cost == total, "the run's total is the sum of its calls"
    if fault.check is not None:
        fault.check(faulty, call)

    # No trace of the key, wherever the fault could have carried it.
    stored = [
        run.error,
        run.verdict,
        *(c.error for c in candidates.values()),
        *(c.error for c in calls),
    ]
    assert_key_absent(KEY, MARKER, "the stored errors", json.dumps(stored))
    assert (REDACTED in faulty.error) == fault.echoed, "the echoed key came back, hidden"
    client = Client()
    client.force_login(alice)
    api = client.get(f"/api/v1/workspaces/{workspace.slug}/runs/{run.pk}")
    assert api.status_code == 200
    assert_key_absent(KEY, MARKER, "the API's run", api.content.decode())
    for name, text in stack_logs(live_stack).items():
        assert_key_absent(KEY, MARKER, f"the log {name}", text)
    assert_key_absent(KEY, MARKER, "this process's log", caplog.text)
    if any(s.echo_key for s in fault.scripts):
        sent = upstream.requests_for(fault.model)[0].headers.get("authorization")
        assert sent == f"Bearer {KEY}", "the key went upstream, to be echoed back"

    assert faulty.error.startswith(f"{LABEL}/{fault.model}: ") or not faulty.error, faulty.error
