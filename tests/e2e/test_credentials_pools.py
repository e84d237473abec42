"""alice adds credentials (one simulated, one on a loopback provider with a pool of two keys),
tests one, then builds pools: by hand with the member editor, and from a preset."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

from fusion.testing.upstream import Upstream
from workbench.accounts import services
from workbench.accounts.models import User, Workspace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-passphrase-9"
KEY_1 = "sk-e2e-LEAKCANARY-1111111111-AB12"
KEY_2 = "sk-e2e-LEAKCANARY-2222222222-CD34"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(models=("up-small", "up-large"), valid_keys={KEY_1, KEY_2})
    up.start_in_thread()
    yield up
    up.stop_thread()


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


def test_it_adds_credentials_and_builds_pools(
    live_server: LiveServer,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
    upstream: Upstream,
    acme: Workspace,
) -> None:
    base = live_server.url
    page = new_page()
    _log_in(page, base, "alice")

    # A simulated credential: no key, no URL; the form hides both.
    page.goto(f"{base}/w/acme/keys/")
    expect(page.get_by_text("No credentials yet")).to_be_visible()
    form = page.get_by_test_id("credential-form")
    form.get_by_label("Provider").select_option("simulated")
    expect(form.locator("[name=keys]")).to_be_hidden()
    form.get_by_label("Label", exact=True).fill("Sim team")
    form.get_by_label("Workspace", exact=True).check()
    form.get_by_role("button", name="Save credential").click()
    expect(page.get_by_role("heading", name="Sim team")).to_be_visible()
    expect(page.get_by_test_id("catalog")).to_contain_text("sim-balanced")
    screenshot(page, "credential_simulated")

    # An OpenAI-compatible server with a pool of two keys.
    page.goto(f"{base}/w/acme/keys/")
    form = page.get_by_test_id("credential-form")
    form.get_by_label("Provider").select_option("openai_compatible")
    expect(form.locator("[name=keys]")).to_be_visible()
    form.get_by_label("Label", exact=True).fill("Local server")
    form.locator("[name=base_url]").fill(f"{upstream.url}/v1")
    form.locator("[name=keys]").fill(f"{KEY_1}\n{KEY_2}")
    screenshot(page, "keys_add_form")
    form.get_by_role("button", name="Save credential").click()
    expect(page.get_by_role("heading", name="Local server")).to_be_visible()
    expect(page.locator("body")).to_contain_text("…AB12")
    assert "LEAKCANARY" not in page.content()

    # Test: every key lists the models; the catalog fills from the answer.
    page.get_by_test_id("test-credential").click()
    expect(page.locator("#check")).to_contain_text("OK: 2 models available.")
    page.get_by_test_id("refresh-models").click()
    expect(page.get_by_test_id("catalog")).to_contain_text("up-large")
    expect(page.get_by_test_id("catalog")).to_contain_text("unpriced")
    screenshot(page, "credential_detail")

    page.goto(f"{base}/w/acme/keys/")
    expect(page.get_by_test_id("credentials")).to_contain_text("…CD34")
    assert "LEAKCANARY" not in page.content()
    screenshot(page, "keys_index")

    # A pool by hand: three rows, one removed, one added, a judge.
    page.goto(f"{base}/w/acme/pools/new/")
    screenshot(page, "pool_new")
    page.get_by_label("Name", exact=True).fill("Hand made")
    page.locator("input[name=mode][value=merge]").check()
    rows = page.locator("[data-member-row]:visible")
    expect(rows).to_have_count(2)
    rows.nth(0).locator("select[name$='-credential']").select_option(label="Sim team")
    rows.nth(0).locator("input[name$='-model']").fill("sim-fast")
    rows.nth(1).locator("select[name$='-credential']").select_option(label="Sim team")
    rows.nth(1).locator("input[name$='-model']").fill("sim-slow")
    page.get_by_role("button", name="+ Add member").click()
    expect(rows).to_have_count(3)
    rows.nth(2).locator("select[name$='-credential']").select_option(
        label="Local server (personal)"
    )
    rows.nth(2).locator("input[name$='-model']").fill("up-small")
    page.get_by_role("button", name="+ Add member").click()
    expect(rows).to_have_count(4)
    rows.nth(3).get_by_role("button", name="Remove member").click()
    expect(rows).to_have_count(3)
    page.locator("[name=judge_credential]").select_option(label="Sim team")
    page.locator("[name=judge_model]").fill("sim-judge")
    screenshot(page, "pool_editor_filled")
    page.get_by_role("button", name="Create pool").click()

    expect(page.get_by_role("heading", name="Hand made")).to_be_visible()
    expect(page.get_by_test_id("members").locator("tbody tr")).to_have_count(3)
    estimate = page.get_by_test_id("estimate")
    expect(estimate).to_contain_text("Judge: analysis")
    expect(estimate).to_contain_text("Judge: synthesis")
    expect(page.get_by_test_id("unpriced-warning")).to_contain_text("up-small")
    screenshot(page, "pool_detail")

    # A pool from the self-fusion preset.
    page.goto(f"{base}/w/acme/pools/new/")
    preset = page.get_by_test_id("preset-self")
    preset.locator("select[name=model]").select_option(label="sim-balanced")
    preset.locator("input[name=n]").fill("4")
    preset.get_by_role("button", name="Use").click()
    expect(page.locator("[data-member-row]:visible")).to_have_count(4)
    page.get_by_role("button", name="Create pool").click()
    expect(page.get_by_role("heading", name=re.compile("Self-fusion"))).to_be_visible()
    expect(page.get_by_test_id("members")).to_contain_text("sim-balanced #4")

    page.goto(f"{base}/w/acme/pools/")
    expect(page.get_by_test_id("pools").locator("tbody tr")).to_have_count(2)
    screenshot(page, "pools_index")
    assert User.objects.count() == 1
