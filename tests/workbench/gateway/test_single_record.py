"""A single-model call is recorded as a one-member API run that the workbench shows like any."""

from __future__ import annotations

from decimal import Decimal

import pytest

from fusion.types import Message
from tests.workbench.gateway.helpers import FAST, sim_credential
from workbench.gateway import services
from workbench.runs.models import Run, RunSource, RunStatus
from workbench.tokens.services import token_create

pytestmark = pytest.mark.django_db


def test_it_records_the_call_and_shows_the_run_page(alice, alice_client, workspace) -> None:
    credential = sim_credential(workspace, alice)
    token, _ = token_create(workspace=workspace, user=alice, name="t")
    call = services.single_open(
        token=token, target=services.SingleTarget(credential, FAST),
        messages=[Message("user", "hi")], max_tokens=50,
    )  # fmt: skip
    run = Run.objects.get(pk=call.run_id)
    assert run.status == RunStatus.RUNNING and run.source == RunSource.API
    assert run.estimated_cost is not None  # reserved against the budgets while it runs

    services.single_close(call=call, result=services.SingleResult(
        status="ok", model=FAST, text="[simulated] four", finish_reason="stop", input_tokens=5,
        output_tokens=3, estimated=False, cost=Decimal("0.00001"), ttft_ms=12.0, latency_ms=40.0,
        key_label="", attempts=1,
    ))  # fmt: skip

    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED and run.fused_text == "[simulated] four"
    assert run.total_cost == Decimal("0.00001")
    call_row = run.calls.get()
    assert (call_row.input_tokens, call_row.output_tokens, call_row.latency_ms) == (5, 3, 40.0)
    page = alice_client.get(f"/w/{workspace.slug}/runs/{run.pk}/")
    assert page.status_code == 200 and "[simulated] four" in page.content.decode()
    assert alice_client.get(f"/w/{workspace.slug}/runs/").status_code == 200
