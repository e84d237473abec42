"""The usage page, its CSV export and the budget form, for alice, bob, vera and charlie."""

from __future__ import annotations

import csv
import io
import uuid
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from workbench.runs.models import CallStatus, Candidate, ProviderCall, Run, RunStatus
from workbench.usage.budgets import budget_set, member_budget_set
from workbench.usage.models import MemberBudget, WorkspaceBudget

pytestmark = pytest.mark.django_db

# Credential labels are the workspace's own words; the provider kind comes with the pool.
KINDS = {"OpenAI": "openai", "Groq": "openai_compatible", "Claude key": "anthropic"}


def url(workspace, suffix: str = "") -> str:
    return f"/w/{workspace.slug}/usage/{suffix}"


def make_run(workspace, user, calls: list[dict], pool_name: str = "Trio") -> Run:
    run = Run.objects.create(
        workspace=workspace, created_by=user, pool_name=pool_name, config={}, mode="best_of",
        prompt="hi", status=RunStatus.FINISHED,
        total_cost=sum((c.get("cost") or Decimal(0) for c in calls), Decimal(0)),
    )  # fmt: skip
    labels = dict.fromkeys(c.get("provider", "OpenAI") for c in calls)
    for i, label in enumerate(labels):
        Candidate.objects.create(
            run=run, member=f"m{i + 1}", provider=label, provider_kind=KINDS[label],
            model="x", status="done",
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
    make_run(workspace, alice, [
        {"cost": Decimal("0.30")},
        {"cost": Decimal("0.10"), "provider": "Claude key", "model": "claude"},
    ])  # fmt: skip
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
    # By provider is the kind of provider; the credential (its label) is a breakdown of its own.
    assert by["provider"] == {
        "OpenAI": Decimal("0.30"),
        "Anthropic": Decimal("0.10"),
        "OpenAI-compatible server": Decimal("0.05"),
    }
    assert by["credential"] == {
        "OpenAI": Decimal("0.30"),
        "Claude key": Decimal("0.10"),
        "Groq": Decimal("0.05"),
    }
    assert by["pool"] == {"Trio": Decimal("0.40"), "Duo": Decimal("0.05")}
    assert by["user"] == {"alice": Decimal("0.40"), "bob": Decimal("0.05")}
    assert "<svg" in html and 'data-testid="day-chart"' in html
    summary = response.context["summary"]
    llama = next(s for s in summary.stats if s.model == "llama")
    assert (llama.provider, llama.calls, llama.failed) == ("OpenAI-compatible server", 2, 1)
    assert ("OpenAI-compatible server", 2, 1, 0.5) in summary.provider_errors


def test_it_shows_latency_and_ttft_percentiles_per_model(alice, alice_client, workspace) -> None:
    # 20 calls of 100 … 2,000 ms (TTFT 10 … 200 ms), shuffled; failed calls do not count.
    order = [7, 19, 0, 13, 4, 16, 9, 2, 11, 18, 5, 14, 1, 8, 17, 3, 12, 6, 15, 10]
    calls = [{"latency_ms": 100.0 * (i + 1), "ttft_ms": 10.0 * (i + 1)} for i in order]
    calls.append({"latency_ms": 99_000.0, "ttft_ms": 9_000.0, "status": CallStatus.FAILED})
    make_run(workspace, alice, calls)

    response = alice_client.get(url(workspace))

    (stats,) = response.context["summary"].stats
    # Nearest rank: p50 is the 10th of 20, p95 the 19th.
    assert (stats.latency_p50, stats.latency_p95) == (1000.0, 1900.0)
    assert (stats.ttft_p50, stats.ttft_p95) == (100.0, 190.0)
    assert (stats.calls, stats.failed) == (21, 1)
    row = response.content.decode().split('data-testid="model-stats"')[1].split("</tr>")[1]
    cells = [c.split(">", 1)[1] for c in row.split("</td>")[:-1]]
    assert cells[-4:] == ["1000 ms", "1900 ms", "100 ms", "190 ms"]


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
    assert {(r["provider"], r["credential"]) for r in rows} == {
        ("openai", "OpenAI"), ("anthropic", "Claude key"), ("openai_compatible", "Groq"),
    }  # fmt: skip


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


def test_it_shows_each_members_cap_and_what_is_left(
    alice, bob, vera, alice_client, spending, workspace
) -> None:
    budget_set(workspace=workspace, monthly_usd=None, per_user_monthly_usd=Decimal("1"))
    member_budget_set(workspace=workspace, user=bob, monthly_usd=Decimal("0.5"))

    response = alice_client.get(url(workspace))

    rows = {r.username: r.state for r in response.context["member_budgets"]}
    assert (rows["alice"].cap, rows["alice"].custom, rows["alice"].remaining) == (
        Decimal("1"), False, Decimal("0.60"),
    )  # fmt: skip
    assert (rows["bob"].cap, rows["bob"].custom, rows["bob"].remaining) == (
        Decimal("0.5"), True, Decimal("0.45"),
    )  # fmt: skip
    assert rows["vera"].remaining == Decimal("1")
    html = response.content.decode()
    assert 'data-testid="left-bob">$0.45<' in html and 'data-testid="left-alice">$0.60<' in html
    # bob sees his own cap as his share, and the table, but no forms to change it.
    bob_page = logged_in(bob).get(url(workspace))
    assert bob_page.context["my_budget"].cap == Decimal("0.5")
    assert "Your share left" in bob_page.content.decode()
    assert 'name="monthly_usd"' not in bob_page.content.decode()


def test_it_lets_only_admins_give_a_member_their_own_cap(
    alice, bob, charlie, alice_client, bob_client, charlie_client, workspace
) -> None:
    target = url(workspace, "budget/member/")
    data = {"user": str(bob.pk), "monthly_usd": "3.50"}
    assert bob_client.post(target, data).status_code == 403
    assert charlie_client.post(target, data).status_code == 404
    assert not MemberBudget.objects.exists()

    assert alice_client.post(target, data).status_code == 302
    assert MemberBudget.objects.get(user=bob).monthly_usd == Decimal("3.50")
    assert WorkspaceBudget.objects.filter(workspace=workspace).exists()  # the reservations' lock
    alice_client.post(target, {"user": str(bob.pk), "monthly_usd": ""})
    assert not MemberBudget.objects.exists()
    alice_client.post(target, {"user": str(charlie.pk), "monthly_usd": "1"})  # not a member
    assert alice_client.post(target, {"user": str(bob.pk), "monthly_usd": "-1"}).status_code == 302
    assert not MemberBudget.objects.exists()


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_it_says_unpriced_where_a_model_has_no_price_never_0(
    alice, alice_client, workspace
) -> None:
    make_run(workspace, alice, [
        {"cost": Decimal("0.20")},
        {"cost": None, "provider": "Groq", "model": "local-large"},  # tokens, no price
        {"cost": None, "status": CallStatus.FAILED, "input_tokens": 0, "output_tokens": 0},
    ])  # fmt: skip
    response = alice_client.get(url(workspace))
    html = response.content.decode()
    bars = {s["key"]: {b.label: b.text for b in s["bars"]} for s in response.context["sections"]}
    assert bars["model"] == {"gpt-4o": "$0.2000", "local-large": "unpriced"}
    assert bars["credential"] == {"OpenAI": "$0.2000", "Groq": "unpriced"}
    assert bars["pool"] == {"Trio": "$0.2000 + unpriced"}
    assert "$0.2000 + unpriced" in html and "1 unpriced call" in html  # the failed one cost 0
