"""The whole journey in a browser, from an empty database, against the real stack (daphne with
websockets, a Celery worker, Redis, the database) and a loopback provider upstream: sign up,
a team workspace, a teammate invited, two credentials, a pool, a run streaming, a teammate's
pick and gold answer, a share link opened logged out, the curated export, an experiment.

With ``UPDATE_SCREENSHOTS=1`` it saves the screenshots shown in the README under
docs/screenshots/; otherwise under a temporary folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from fusion.testing.upstream import Upstream
from workbench.lib.stack import BASE_DIR, Stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-long-journey-passphrase-7"
KEY = "sk-journey-LEAKCANARY-9876543210-ZZ99"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(models=("local-small", "local-large"), valid_keys={KEY})
    up.start_in_thread()
    yield up
    up.stop_thread()


@pytest.fixture
def shot(tmp_path: Path) -> Callable[[Page, str], None]:
    folder = BASE_DIR / "docs" / "screenshots" if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path

    def take(page: Page, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return take


def _sign_up(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password, again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page).to_have_url(re.compile(rf"/w/{username}/$"))


def test_it_goes_from_sign_up_to_a_fused_answer(
    live_stack: Stack,
    new_page: Callable[[], Page],
    upstream: Upstream,
    shot: Callable[[Page, str], None],
) -> None:
    base = live_stack.url
    alice = new_page()
    _sign_up(alice, base, "alice")

    # A team workspace, and bob invited into it.
    alice.get_by_label("Switch workspace").click()
    alice.get_by_role("link", name="+ New workspace").click()
    alice.get_by_label("Name").fill("Acme")
    alice.get_by_role("button", name="Create workspace").click()
    expect(alice).to_have_url(re.compile(r"/w/acme/members/$"))
    alice.locator("#invite-form").get_by_label("Role").select_option("member")
    alice.locator("#invite-form").get_by_role("button", name="Create invite link").click()
    link = alice.get_by_test_id("invite-link").input_value()
    bob = new_page()
    _sign_up(bob, base, "bob")
    bob.goto(link)
    bob.get_by_role("button", name="Accept and join as bob").click()
    expect(bob).to_have_url(re.compile(r"/w/acme/$"))
    alice.reload()
    expect(alice.locator('[data-testid="member-row"][data-username="bob"]')).to_be_visible()
    shot(alice, "members")

    # Two credentials: the simulated provider, and an OpenAI-compatible server (loopback).
    alice.goto(f"{base}/w/acme/keys/")
    form = alice.get_by_test_id("credential-form")
    form.get_by_label("Provider").select_option("simulated")
    form.get_by_label("Label", exact=True).fill("Simulated")
    form.get_by_label("Workspace", exact=True).check()
    form.get_by_role("button", name="Save credential").click()
    expect(alice.get_by_role("heading", name="Simulated")).to_be_visible()
    alice.goto(f"{base}/w/acme/keys/")
    form = alice.get_by_test_id("credential-form")
    form.get_by_label("Provider").select_option("openai_compatible")
    form.get_by_label("Label", exact=True).fill("Local server")
    form.get_by_label("Workspace", exact=True).check()
    form.locator("[name=base_url]").fill(f"{upstream.url}/v1")
    form.locator("[name=keys]").fill(KEY)
    form.get_by_role("button", name="Save credential").click()
    alice.get_by_test_id("test-credential").click()
    expect(alice.locator("#check")).to_contain_text("OK")
    alice.get_by_test_id("refresh-models").click()
    expect(alice.get_by_test_id("catalog")).to_contain_text("local-large")
    alice.goto(f"{base}/w/acme/keys/")
    assert "LEAKCANARY" not in alice.content()
    shot(alice, "keys")

    # A merge pool: two simulated members and the local server's model, a simulated judge.
    alice.goto(f"{base}/w/acme/pools/new/")
    alice.get_by_label("Name", exact=True).fill("Team merge")
    alice.locator("input[name=mode][value=merge]").check()
    rows = alice.locator("[data-member-row]:visible")
    rows.nth(0).locator("select[name$='-credential']").select_option(label="Simulated")
    rows.nth(0).locator("input[name$='-model']").fill("sim-fast")
    rows.nth(1).locator("select[name$='-credential']").select_option(label="Simulated")
    rows.nth(1).locator("input[name$='-model']").fill("sim-balanced")
    alice.get_by_role("button", name="+ Add member").click()
    rows.nth(2).locator("select[name$='-credential']").select_option(label="Local server")
    rows.nth(2).locator("input[name$='-model']").fill("local-large")
    alice.locator("[name=judge_credential]").select_option(label="Simulated")
    alice.locator("[name=judge_model]").fill("sim-judge")
    alice.get_by_role("button", name="Create pool").click()
    expect(alice.get_by_role("heading", name="Team merge")).to_be_visible()
    shot(alice, "pool")

    # Run it and watch the three columns and the judge stream in.
    alice.goto(f"{base}/w/acme/runs/new/")
    alice.get_by_label("Pool", exact=True).select_option(label="Team merge")
    alice.get_by_test_id("prompt-input").fill("Why is the sky blue? Answer in two sentences.")
    alice.get_by_test_id("start-run").click()
    expect(alice).to_have_url(re.compile(r"/w/acme/runs/[0-9a-f-]{36}/$"))
    columns = alice.get_by_test_id("candidate")
    expect(columns).to_have_count(3)
    expect(
        alice.locator('[data-testid="candidate"][data-status="streaming"]').first
    ).to_be_visible()
    shot(alice, "run_streaming")
    expect(alice.get_by_test_id("synthesis")).to_be_visible(timeout=30_000)
    expect(alice.locator('[data-testid="candidate"][data-status="done"]')).to_have_count(3)
    shot(alice, "run_finished")
    run_url = alice.url

    # Everything the run did is in its call table, judge passes included.
    calls = alice.get_by_test_id("calls")
    expect(calls).to_contain_text("local-large")
    expect(calls).to_contain_text("judge")
    assert "LEAKCANARY" not in alice.content()

    bob.goto(run_url)
    expect(bob.get_by_test_id("candidate")).to_have_count(3)
    shot(bob, "run_as_teammate")

    # bob picks the local server's answer and writes a gold answer starting from it.
    form = bob.get_by_test_id("judgment-form")
    form.get_by_test_id("pick-m3").check()
    form.locator("textarea[name=rationale]").fill("Plainest of the three.")
    form.locator("details.gold summary").click()
    form.locator("[data-gold-from=m3]").click()
    gold = form.get_by_test_id("gold-answer")
    expect(gold).not_to_have_value("")
    gold.fill("Sunlight scatters off air molecules; blue light scatters most, so the sky is blue.")
    form.get_by_test_id("save-judgment").click()
    expect(bob.get_by_text("Your judgment is saved.")).to_be_visible()

    # alice sees bob's judgment beside the judge's, shares the run, and a visitor opens it.
    alice.goto(run_url)
    people = alice.get_by_test_id("people")
    expect(people).to_contain_text("bob")
    expect(people).to_contain_text("Plainest of the three.")
    expect(alice.get_by_test_id("gold-answers")).to_contain_text("blue light scatters most")
    alice.get_by_test_id("share-create").click()
    share_url = alice.get_by_test_id("share-url").first.input_value()
    shot(alice, "run_curated")
    visitor = new_page()
    visitor.goto(share_url)
    expect(visitor.get_by_test_id("prompt")).to_have_text(
        "Why is the sky blue? Answer in two sentences."
    )
    expect(visitor.get_by_test_id("shared-answer")).to_have_count(3)
    assert "LEAKCANARY" not in visitor.content() and "Local server" not in visitor.content()
    shot(visitor, "share_page")

    # The curated data out: chat fine-tuning JSONL with bob's gold answer.
    alice.goto(f"{base}/w/acme/curation/export/")
    export = alice.get_by_test_id("export-form")
    export.get_by_label("Format").select_option("chat")
    with alice.expect_download() as download:
        export.get_by_test_id("export-download").click()
    lines = Path(download.value.path()).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 1
    assert records[0]["messages"][-1] == {
        "role": "assistant",
        "content": "Sunlight scatters off air molecules; blue light scatters most, so the sky "
        "is blue.",
    }

    # An experiment: the sample dataset through the pool, estimate first.
    alice.goto(f"{base}/w/acme/experiments/")
    alice.get_by_test_id("install-sample").click()
    expect(alice.get_by_test_id("items").locator("tbody tr")).to_have_count(13)
    alice.get_by_role("link", name="Run an experiment").click()
    expect(alice.get_by_label("Team merge: Merge")).to_be_checked()
    alice.get_by_label("Each member model alone").uncheck()
    alice.get_by_label("Runs at once").fill("13")
    alice.get_by_test_id("estimate").click()
    expect(alice.get_by_test_id("experiment-estimate")).to_contain_text("$")
    alice.get_by_test_id("start").click()
    expect(alice.get_by_test_id("experiment-status").first).to_have_text("Finished", timeout=90_000)
    expect(alice.get_by_test_id("arm-results").locator("tbody tr")).to_have_count(1)
    expect(alice.get_by_test_id("item-results").locator("tbody tr")).to_have_count(13)
    shot(alice, "experiment_results")

    # What it all cost, by model and provider.
    alice.goto(f"{base}/w/acme/usage/")
    expect(alice.locator("h1")).to_be_visible()
    assert "LEAKCANARY" not in alice.content()
    shot(alice, "usage")
