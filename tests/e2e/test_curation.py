"""People curate a finished run in a real browser, against the real stack.

bob picks a winner, rates the answers and writes a gold answer started from one of them;
alice sees his judgment beside the judge's; bob makes a share link and an anonymous visitor
opens it. Along the way every curation page is opened once (and screenshotted when
E2E_SCREENSHOTS names a folder).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from tests.workbench.runs.pages import finished_run
from workbench.accounts import services as accounts
from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.curation.models import Judgment
from workbench.curation.services import judgment_save
from workbench.lib.stack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-long-test-passphrase-9"


def logged_in(page: Page, stack: Stack, user: User) -> Page:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": stack.url}]
    )
    return page


@pytest.fixture
def people(live_stack: Stack) -> tuple[User, User, Workspace]:
    alice = accounts.user_signup(username="alice", email="alice@example.com", password=PASSWORD)
    bob = accounts.user_signup(username="bob", email="bob@example.com", password=PASSWORD)
    workspace = accounts.workspace_create(owner=alice, name="Acme")
    Membership.objects.create(workspace=workspace, user=bob, role=Role.MEMBER)
    return alice, bob, workspace


def test_it_lets_people_pick_annotate_and_share(
    live_stack: Stack,
    people: tuple[User, User, Workspace],
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
) -> None:
    alice, bob, workspace = people
    run = finished_run(
        workspace,
        alice,
        prompt="Explain caching in one paragraph.",
        texts={
            "m1": "Caching keeps **copies** of data close to where it is used.",
            "m2": "A cache stores results so that the next request is *faster*.",
            "m3": "Caches trade memory for speed:\n\n- hits are cheap\n- misses cost a trip",
        },
    )
    run_url = f"{live_stack.url}/w/{workspace.slug}/runs/{run.pk}/"

    page = logged_in(new_page(), live_stack, bob)
    page.goto(run_url)
    form = page.get_by_test_id("judgment-form")
    expect(form).to_be_visible()
    form.get_by_test_id("pick-m3").check()
    form.locator("select[name=rank_m3]").select_option("1")
    form.locator("select[name=rank_m1]").select_option("2")
    form.locator("label[title='5 of 5']").first.click()
    form.locator("textarea[name=rationale]").fill("The list makes the trade-off plain.")
    form.locator("details.gold summary").click()
    form.locator("[data-gold-from=m3]").click()
    gold = form.get_by_test_id("gold-answer")
    expect(gold).to_have_value(
        "Caches trade memory for speed:\n\n- hits are cheap\n- misses cost a trip"
    )
    gold.fill("Caches trade memory for speed: hits are cheap, misses cost a trip to the source.")
    screenshot(page, "run-panel-before-save")
    form.get_by_test_id("save-judgment").click()
    expect(page.get_by_test_id("consensus")).to_contain_text("1 of 1")
    expect(page.get_by_text("Your judgment is saved.")).to_be_visible()
    judgment = Judgment.objects.get(run=run, user=bob)
    assert (judgment.choice, judgment.winner) == ("pick", "m3")
    assert judgment.gold_answer.startswith("Caches trade memory for speed: hits are cheap")
    assert judgment.ranking == {"m3": 1, "m1": 2}

    page.get_by_test_id("comment-body").fill("Worth a second look from alice?")
    page.get_by_test_id("comment-submit").click()
    expect(page.get_by_test_id("comments")).to_contain_text("Worth a second look")

    page.get_by_test_id("share-create").click()
    share_url = page.get_by_test_id("share-url").first.input_value()
    assert "/s/" in share_url
    screenshot(page, "run-panel-bob")

    # alice sees bob's pick and gold answer beside the judge's verdict.
    alice_page = logged_in(new_page(), live_stack, alice)
    alice_page.goto(run_url)
    people_card = alice_page.get_by_test_id("people")
    expect(people_card).to_contain_text("bob")
    expect(people_card).to_contain_text("sim-slow")
    expect(people_card).to_contain_text("gold")
    expect(people_card).to_contain_text("The list makes the trade-off plain.")
    expect(alice_page.get_by_test_id("verdict")).to_contain_text("sim-balanced")
    screenshot(alice_page, "run-panel-alice")

    # An anonymous visitor opens the share link.
    visitor = new_page()
    visitor.goto(share_url)
    expect(visitor.get_by_test_id("prompt")).to_have_text("Explain caching in one paragraph.")
    expect(visitor.get_by_test_id("shared-answer")).to_have_count(3)
    expect(visitor.get_by_test_id("share-consensus")).to_have_text("sim-slow")
    expect(visitor.locator(".md strong").first).to_have_text("copies")
    screenshot(visitor, "share-page")

    # The workspace's curation pages.
    judgment_save(run=run, user=alice, choice="pick", winner="m3")
    for winner in ("m2", "m2", "m1"):
        other = finished_run(workspace, alice, prompt=f"Another question ({winner})")
        judgment_save(run=other, user=alice, choice="pick", winner=winner, rationale="ok")
    for path, name in (
        ("judges/", "judges"),
        ("curation/leaderboard/", "leaderboard"),
        ("curation/review/", "review"),
        ("curation/export/?format=chat&curated_only=on", "export"),
    ):
        alice_page.goto(f"{live_stack.url}/w/{workspace.slug}/{path}")
        expect(alice_page.locator("h1")).to_be_visible()
        screenshot(alice_page, name)


def test_it_hides_model_names_until_the_person_picks_in_blind_mode(
    live_stack: Stack,
    people: tuple[User, User, Workspace],
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
) -> None:
    alice, bob, workspace = people
    workspace.blind_mode = True
    workspace.save()
    models = ("sim-fast", "sim-balanced", "sim-slow")
    run = finished_run(
        workspace,
        alice,
        models=models,
        texts={
            "m1": "Copies close by.",
            "m2": "Results kept for later.",
            "m3": "Memory for speed.",
        },
    )
    credential = next(iter(run.config["providers"].values()))["label"]
    page = logged_in(new_page(), live_stack, bob)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/{run.pk}/")
    # Wait for the live script to have applied the websocket's snapshot: it must not bring
    # the names back.
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "ended")
    expect(page.locator("#run")).to_have_attribute("data-snapshots", "1")
    text = page.locator("body").inner_text()
    for name in (*models, "sim-judge", credential):
        assert name not in text, f"{name} shows before the pick"
    titles = page.locator("[data-field=model]").evaluate_all("els => els.map(e => e.title)")
    assert sorted(titles) == ["Answer 1", "Answer 2", "Answer 3"]
    screenshot(page, "blind-run-before-pick")

    form = page.get_by_test_id("judgment-form")
    first = page.locator("article.cand").first.get_attribute("data-member")
    form.get_by_test_id(f"pick-{first}").check()
    form.get_by_test_id("save-judgment").click()
    # The pick reloads the page with the names back, in the same order.
    expect(page.get_by_test_id("blind-note")).to_have_count(0)
    expect(page.locator("article.cand").first).to_have_attribute("data-member", first)
    expect(page.get_by_test_id("verdict")).to_contain_text("sim-balanced")
    text = page.locator("body").inner_text()
    assert all(name in text for name in models)
    screenshot(page, "blind-run-after-pick")
