"""The usage page, its CSV export and the budget form, for alice, bob, vera and charlie."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from workbench.runs.models import CallStatus, ProviderCall, Run, RunStatus
from workbench.usage.models import WorkspaceBudget

pytestmark = pytest.mark.django_db


def url(workspace, suffix: str = "") -> str:
    return f"/w/{workspace.slug}/usage/{suffix}"


def make_run(workspace, user, calls: list[dict], pool_name: str = "Trio") -> Run:
    run = Run.objects.create(
        workspace=workspace, created_by=user, pool_name=pool_name, config={}, mode="best_of",
        prompt="hi", status=RunStatus.FINISHED,
        total_cost=sum((c.get("cost") or Decimal(0) for c in calls), Decimal(0)),
    )  # fmt: skip
    for spec in calls:
        ProviderCall.objects.create(
            run=run, call_id=uuid.uuid4().hex, candidate="m1",
            **{"provider": "OpenAI", "model": "gpt-4o", "status": CallStatus.OK,
               "input_tokens": 10, "output_tokens": 20, "latency_ms": 100.0, "ttft_ms": 20.0,
               **spec},
        )  # fmt: skip
    return run


@pytest.fixture
def spending(workspace, alice, bob) -> None:
    make_run(
        workspace, alice, [{"cost": Decimal("0.30")}, {"cost": Decimal("0.10"), "model": "claude"}]
    )
    make_run(workspace, bob, [
        {"cost": Decimal("0.05"), "provider": "Groq", "model": "llama", "latency_ms": 900.0},
        {"cost": None, "provider": "Groq", "model": "llama", "status": CallStatus.FAILED,
         "error": "HTTP 503"},
    ], pool_name="Duo")  # fmt: skip


def test_it_shows_spend_by_model_provider_pool_and_member(
    alice_client, spending, workspace
) -> None:
    response = alice_client.get(url(workspace))
    assert response.status_code == 200
    html = response.content.decode()
    assert "$0.4500" in html  # the total
    by = {s["key"]: {g.label: g.cost for g in s["groups"]} for s in response.context["sections"]}
    assert by["model"] == {
        "gpt-4o": Decimal("0.30"),
        "claude": Decimal("0.10"),
        "llama": Decimal("0.05"),
    }
    assert by["provider"] == {"OpenAI": Decimal("0.40"), "Groq": Decimal("0.05")}
    assert by["pool"] == {"Trio": Decimal("0.40"), "Duo": Decimal("0.05")}
    assert by["user"] == {"alice": Decimal("0.40"), "bob": Decimal("0.05")}
    assert "<svg" in html and 'data-testid="day-chart"' in html
    llama = next(s for s in response.context["stats"] if s.model == "llama")
    assert (llama.calls, llama.failed, llama.latency_p50) == (2, 1, 900.0)
    assert ("Groq", 2, 1, 0.5) in response.context["provider_errors"]


def test_it_lets_members_and_viewers_read_and_keeps_outsiders_out(
    bob_client, vera_client, charlie_client, workspace
) -> None:
    assert bob_client.get(url(workspace)).status_code == 200
    assert vera_client.get(url(workspace)).status_code == 200
    assert charlie_client.get(url(workspace)).status_code == 404
    assert charlie_client.get(url(workspace) + "?format=csv").status_code == 404
    assert Client().get(url(workspace)).status_code == 302


def test_it_filters_by_date_range(alice_client, spending, workspace) -> None:
    long_ago = timezone.now() - timezone.timedelta(days=90)
    ProviderCall.objects.filter(model="claude").update(created_at=long_ago)
    response = alice_client.get(url(workspace))
    models = {g.label for g in response.context["sections"][0]["groups"]}
    assert "claude" not in models
    day = long_ago.date().isoformat()
    response = alice_client.get(url(workspace) + f"?start={day}&end={day}")
    assert {g.label for g in response.context["sections"][0]["groups"]} == {"claude"}
    assert alice_client.get(url(workspace) + "?start=nonsense").status_code == 200


def test_it_exports_every_call_as_csv(alice_client, spending, workspace) -> None:
    response = alice_client.get(url(workspace) + "?format=csv")
    assert response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 4
    assert {r["user"] for r in rows} == {"alice", "bob"}
    assert sum(Decimal(r["cost_usd"] or 0) for r in rows) == Decimal("0.45")


def test_it_shows_the_remaining_budget(alice_client, spending, workspace) -> None:
    WorkspaceBudget.objects.create(workspace=workspace, monthly_usd=Decimal("10"))
    html = alice_client.get(url(workspace)).content.decode()
    assert "$9.55" in html


def test_it_lets_only_admins_set_the_budget(
    alice_client, bob_client, charlie_client, workspace
) -> None:
    data = {"monthly_usd": "25", "per_user_monthly_usd": "5.5"}
    assert bob_client.post(url(workspace, "budget/"), data).status_code == 403
    assert charlie_client.post(url(workspace, "budget/"), data).status_code == 404
    assert not WorkspaceBudget.objects.exists()
    assert alice_client.post(url(workspace, "budget/"), data).status_code == 302
    budget = WorkspaceBudget.objects.get()
    assert (budget.monthly_usd, budget.per_user_monthly_usd) == (Decimal("25"), Decimal("5.5"))
    alice_client.post(url(workspace, "budget/"), {"monthly_usd": "", "per_user_monthly_usd": ""})
    budget.refresh_from_db()
    assert budget.monthly_usd is None


def test_it_links_usage_from_the_navigation(alice_client, workspace) -> None:
    html = alice_client.get(f"/w/{workspace.slug}/runs/").content.decode()
    assert f'href="/w/{workspace.slug}/usage/"' in html
