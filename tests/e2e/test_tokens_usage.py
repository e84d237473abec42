"""alice creates an API token (shown once), revokes it, sets budgets (the workspace's, the
default per member and bob's own) and reads the usage page."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from workbench.accounts import services
from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.runs.models import CallStatus, Candidate, ProviderCall, Run, RunSource, RunStatus
from workbench.tokens.services import token_authenticate

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-passphrase-9"


@pytest.fixture
def acme() -> Workspace:
    alice = services.user_signup(username="alice", email="alice@example.com", password=PASSWORD)
    return services.workspace_create(owner=alice, name="Acme")


def _log_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/login/"))


def _history(workspace: Workspace, users: list[User]) -> None:
    """A month of calls over a few models, pools and members, one provider failing now and then.

    Credentials carry the workspace's own labels; their provider kind comes with the candidate.
    """
    models = [
        ("OpenAI prod", "openai", "gpt-4o-mini"),
        ("Claude team key", "anthropic", "claude-3-5-haiku"),
        ("Groq", "openai_compatible", "llama-3.1-8b"),
    ]
    now = timezone.now()
    for day in range(0, 28, 2):
        for i, (provider, kind, model) in enumerate(models):
            run = Run.objects.create(
                workspace=workspace, created_by=users[(day + i) % len(users)],
                pool_name=["Trio", "Cheap pair"][i % 2], config={}, mode="best_of", prompt="hi",
                status=RunStatus.FINISHED, source=[RunSource.WEB, RunSource.GATEWAY][day % 4 // 2],
            )  # fmt: skip
            Candidate.objects.create(
                run=run, member="m1", provider=provider, provider_kind=kind, model=model,
                status="done",
            )  # fmt: skip
            failed = provider == "Groq" and day % 6 == 0
            call = ProviderCall.objects.create(
                run=run, call_id=uuid.uuid4().hex, candidate="m1", provider=provider, model=model,
                status=CallStatus.FAILED if failed else CallStatus.OK,
                input_tokens=400, output_tokens=300 + 20 * day,
                cost=None if failed else Decimal("0.002") * (i + 1) * (1 + day % 5),
                latency_ms=400.0 + 90 * i + 7 * day, ttft_ms=120.0 + 30 * i,
            )  # fmt: skip
            ProviderCall.objects.filter(pk=call.pk).update(created_at=now - timedelta(days=day))
            Run.objects.filter(pk=run.pk).update(total_cost=call.cost)


def test_it_creates_revokes_tokens_and_shows_usage(
    live_server: LiveServer,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
    acme: Workspace,
) -> None:
    base = live_server.url
    bob = services.user_signup(username="bob", email="bob@example.com", password=PASSWORD)
    Membership.objects.create(workspace=acme, user=bob, role=Role.MEMBER)
    page = new_page()
    _log_in(page, base, "alice")

    page.goto(f"{base}/w/acme/tokens/")
    page.get_by_label("Name").fill("eval script")
    page.get_by_role("button", name="Create token").click()
    raw = page.get_by_test_id("token-value").input_value()
    assert raw.startswith("fw_") and token_authenticate(raw) is not None
    screenshot(page, "tokens-created")

    page.goto(f"{base}/w/acme/tokens/")
    expect(page.get_by_test_id("token-value")).to_have_count(0)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("revoked", exact=True)).to_be_visible()
    assert token_authenticate(raw) is None
    screenshot(page, "tokens-list")

    _history(acme, [acme.memberships.get(role=Role.OWNER).user, bob])
    page.goto(f"{base}/w/acme/usage/")
    page.get_by_label("Workspace cap (USD)").fill("5")
    page.get_by_label("Cap per member (USD)").fill("2")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_test_id("budget-remaining")).to_contain_text("of $5.00")
    expect(page.get_by_test_id("by-model")).to_contain_text("claude-3-5-haiku")
    expect(page.get_by_test_id("by-provider")).to_contain_text("Anthropic")
    expect(page.get_by_test_id("by-credential")).to_contain_text("Claude team key")
    expect(page.get_by_test_id("model-stats")).to_contain_text("llama-3.1-8b")

    page.get_by_label("Own monthly cap for bob").fill("0.75")
    page.get_by_label("Own monthly cap for bob").press("Enter")
    budgets = page.get_by_test_id("member-budgets")
    expect(budgets.locator('tr[data-member="bob"]')).to_contain_text("own")
    spent = sum(r.total_cost or 0 for r in Run.objects.filter(created_by=bob))
    expect(page.get_by_test_id("left-bob")).to_have_text(f"${Decimal('0.75') - spent:.2f}")
    expect(budgets.locator('tr[data-member="alice"]')).to_contain_text("default")
    screenshot(page, "usage")

    page.goto(f"{base}/w/acme/runs/")
    expect(page.get_by_test_id("source-gateway").first).to_be_visible()
    screenshot(page, "runs-sources")
