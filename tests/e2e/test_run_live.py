"""The live run page in a real browser, against the real stack (daphne + a Celery worker).

1. A run on a pool of three simulated models: the three columns stream, each ends with its
   rendered Markdown, the judge's verdict fills in and the winner is outlined; the texts in
   the page equal the stored ones, byte for byte.
2. Model output that tries to run script (``<script>``, ``<img onerror>``, ``javascript:``
   links) runs nothing: streamed live (a loopback provider echoes the prompt) and loaded from
   a finished run (the websocket snapshot path).
3. Reloading the page mid-run shows what has streamed so far and continues live to the
   verdict, with the texts equal to the stored ones.
4. The page's Cancel button stops a streaming run; what streamed is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from fusion.testing.upstream import Upstream
from tests.workbench.runs.helpers import simulated_pool, start_run
from tests.workbench.runs.pages import XSS_TEXT, finished_run
from workbench.accounts import services as accounts
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.stack import Stack
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.models import Candidate, CandidateStatus, Run, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-long-test-passphrase-9"
# Slow enough to be seen streaming, quick enough for a test.
MODELS = [
    "sim-fast@ttft=0.2,tps=30,tokens=45",
    "sim-balanced@ttft=0.4,tps=25,tokens=45",
    "sim-slow@ttft=0.7,tps=20,tokens=45",
]
PAYLOAD = (
    "<script>window.__pwned=1;alert(1)</script>"
    '<img src=x onerror="window.__pwned=2;alert(2)">'
    "[click](javascript:window.__pwned=3) "
    '<a href="javascript:window.__pwned=4">raw</a>'
)


@pytest.fixture
def alice(live_stack: Stack) -> User:
    return accounts.user_signup(username="alice", email="alice@example.com", password=PASSWORD)


@pytest.fixture
def workspace(alice: User) -> Workspace:
    return accounts.workspace_create(owner=alice, name="Acme")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(models=("echo",))
    up.start_in_thread()
    yield up
    up.stop_thread()


def logged_in(page: Page, stack: Stack, user: User) -> Page:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": stack.url}]
    )
    return page


def watch_for_script(page: Page) -> list[str]:
    dialogs: list[str] = []

    def on_dialog(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", on_dialog)
    return dialogs


def assert_nothing_ran(page: Page, dialogs: list[str]) -> None:
    assert page.evaluate("() => window.__pwned") is None
    assert dialogs == []
    # Neither the live text nor the rendered Markdown holds an element that could run.
    assert page.locator(".cand script, .cand img, .cand [onerror]").count() == 0
    assert page.locator('.cand a[href^="javascript"], .cand a[href^="JAVASCRIPT"]').count() == 0


def assert_texts_are_stored(page: Page, run: Run) -> None:
    for candidate in Candidate.objects.filter(run=run):
        shown = page.locator(f'.cand[data-part="{candidate.key}"] [data-stream]').text_content()
        assert shown == candidate.text, candidate.key


def test_it_streams_three_columns_and_the_verdict_live(
    live_stack: Stack,
    alice: User,
    workspace: Workspace,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
) -> None:
    pool = simulated_pool(workspace, alice, MODELS)
    page = logged_in(new_page(), live_stack, alice)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/new/")
    page.get_by_label("Pool", exact=True).select_option(str(pool.pk))
    page.get_by_test_id("prompt-input").fill("Explain how a B-tree keeps itself balanced.")
    expect(page.get_by_test_id("estimate")).to_contain_text("sim-slow")
    screenshot(page, "run_new")
    page.get_by_test_id("start-run").click()

    expect(page).to_have_url(re.compile(rf"/w/{workspace.slug}/runs/[0-9a-f-]+/$"))
    run = Run.objects.get()
    columns = page.get_by_test_id("candidate")
    expect(columns).to_have_count(3)
    # Text arrives over the socket while the run is going: a column is streaming.
    expect(page.locator('.cand[data-status="streaming"] [data-stream]').first).not_to_be_empty(
        timeout=15_000
    )
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "live")
    screenshot(page, "run_mid")

    for i in range(3):
        expect(columns.nth(i)).to_have_attribute("data-status", "done", timeout=30_000)
    expect(page.get_by_test_id("winner")).to_be_visible(timeout=30_000)
    expect(page.locator("#run-head [data-run-status]")).to_have_attribute(
        "data-run-status", "finished", timeout=30_000
    )
    expect(page.locator(".cand.is-winner")).to_have_count(1)
    expect(page.locator(".cand.is-winner [data-winner-badge]")).to_be_visible()
    # Rendered Markdown swapped in for each finished answer.
    expect(page.locator('.cand[data-view="md"] [data-md] p')).to_have_count(3)
    # Every call in the table (three members, the judge), with a total.
    expect(page.get_by_test_id("calls").locator("tbody tr")).to_have_count(4)
    expect(page.get_by_test_id("calls-total")).to_contain_text("4 calls")
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "ended")

    run.refresh_from_db()
    winner = page.locator(".cand.is-winner").get_attribute("data-member")
    assert winner == run.winner
    assert_texts_are_stored(page, run)
    page.locator(".cand").first.scroll_into_view_if_needed()
    screenshot(page, "run_finished")


def test_it_runs_nothing_a_model_streams(
    live_stack: Stack,
    alice: User,
    workspace: Workspace,
    upstream: Upstream,
    new_page: Callable[[], Page],
) -> None:
    echo = credential_create(
        workspace=workspace, user=alice, provider="openai_compatible", label="Loopback",
        scope=Scope.WORKSPACE, base_url=f"{upstream.url}/v1",
    )  # fmt: skip
    sim = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="Sim", scope=Scope.WORKSPACE
    )
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="Echo",
            members=[
                # Streams the prompt back three characters at a time: tags split across deltas.
                MemberInput(
                    credential_id=echo.pk, model="echo@delay=0.01,token_chars=3", custom_model=True
                ),
                MemberInput(
                    credential_id=sim.pk, model="sim-fast@ttft=0.1,tps=0", custom_model=True
                ),
            ],
            judge=JudgeInput(
                credential_id=sim.pk, model="sim-judge@ttft=0.01,tps=0", custom_model=True
            ),
        ),
    )
    page = logged_in(new_page(), live_stack, alice)
    dialogs = watch_for_script(page)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/new/")
    page.get_by_label("Pool", exact=True).select_option(str(pool.pk))
    page.get_by_test_id("prompt-input").fill(PAYLOAD)
    page.get_by_test_id("start-run").click()
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "ended", timeout=30_000)
    echoed = page.locator('.cand[data-member="m1"]')
    expect(echoed).to_have_attribute("data-status", "done")
    # The payload arrived as text, whole.
    expect(echoed.locator("[data-stream]")).to_contain_text("<script>window.__pwned=1;")
    expect(echoed.locator("[data-stream]")).to_contain_text('onerror="window.__pwned=2')
    expect(echoed.locator("[data-md] p")).to_be_visible()
    echoed.get_by_role("button", name="Raw").click()
    echoed.get_by_role("button", name="Rendered").click()
    assert_nothing_ran(page, dialogs)


def test_it_runs_nothing_from_a_stored_answer(
    live_stack: Stack,
    alice: User,
    workspace: Workspace,
    new_page: Callable[[], Page],
) -> None:
    run = finished_run(workspace, alice, texts={"m1": XSS_TEXT, "m2": PAYLOAD})
    page = logged_in(new_page(), live_stack, alice)
    dialogs = watch_for_script(page)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/{run.pk}/")
    # The socket's snapshot is applied (and the page then closes it: the run has ended).
    expect(page.locator("#run")).to_have_attribute("data-snapshots", "1", timeout=15_000)
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "ended")
    first = page.locator('.cand[data-member="m1"]')
    expect(first.locator("[data-md] strong")).to_have_text("bold")
    expect(first.locator("[data-md] pre.highlight")).to_be_visible()
    expect(first.locator("[data-md]")).to_contain_text("<script>window.__pwned = 1</script>")
    for member in ("m1", "m2"):
        column = page.locator(f'.cand[data-member="{member}"]')
        column.get_by_role("button", name="Raw").click()
        expect(column.locator("[data-stream]")).to_be_visible()
        column.get_by_role("button", name="Rendered").click()
    assert_nothing_ran(page, dialogs)


def test_it_continues_live_after_a_reload_mid_run(
    live_stack: Stack,
    alice: User,
    workspace: Workspace,
    new_page: Callable[[], Page],
) -> None:
    # About seven seconds of streaming: time to load, reload and load again mid-run.
    slow = ["sim-fast@ttft=0.1,tps=8,tokens=60", "sim-balanced@ttft=0.2,tps=8,tokens=60"]
    run = start_run(simulated_pool(workspace, alice, slow), alice)
    page = logged_in(new_page(), live_stack, alice)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/{run.pk}/")
    streaming = page.locator('.cand[data-status="streaming"] [data-stream]')
    expect(streaming.first).not_to_be_empty(timeout=15_000)

    page.reload()

    # The reloaded page was rendered with what had streamed, and picks up from there.
    assert run.candidates.filter(status=CandidateStatus.STREAMING).exists(), "still mid-run"
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "live")
    expect(streaming.first).not_to_be_empty()
    columns = page.get_by_test_id("candidate")
    for i in range(2):
        expect(columns.nth(i)).to_have_attribute("data-status", "done", timeout=30_000)
    expect(page.get_by_test_id("winner")).to_be_visible(timeout=30_000)
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "ended")
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    assert page.locator(".cand.is-winner").get_attribute("data-member") == run.winner
    assert_texts_are_stored(page, run)


def test_it_cancels_from_the_page_keeping_what_streamed(
    live_stack: Stack,
    alice: User,
    workspace: Workspace,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
) -> None:
    fast = "sim-fast@ttft=0.05,tps=200,tokens=30"
    run = start_run(simulated_pool(workspace, alice, [fast, "sim-hang"]), alice)
    page = logged_in(new_page(), live_stack, alice)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/{run.pk}/")
    hanging = page.locator('.cand[data-member="m2"]')
    expect(hanging).to_have_attribute("data-status", "streaming", timeout=15_000)
    expect(hanging.locator("[data-stream]")).not_to_be_empty()

    page.get_by_test_id("cancel").click()

    expect(page.locator("#run-head [data-run-status]")).to_have_attribute(
        "data-run-status", "cancelled", timeout=10_000
    )
    expect(hanging).to_have_attribute("data-status", "cancelled")
    expect(page.locator("#run-conn")).to_have_attribute("data-state", "ended")
    expect(page.get_by_test_id("rerun")).to_be_visible()
    screenshot(page, "run_cancelled")
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED and run.cancel_requested
    m2 = run.candidates.get(member="m2")
    assert m2.status == CandidateStatus.CANCELLED and m2.text, "the partial output is kept"
    assert_texts_are_stored(page, run)


def test_it_shows_a_member_retrying_then_answering_from_its_fallback(
    live_stack: Stack, alice: User, workspace: Workspace, new_page: Callable[[], Page]
) -> None:
    failing = "sim-fast@fail=1,ttft=0.01"  # every try fails: retried, then the fallback answers
    pool = simulated_pool(workspace, alice, [MODELS[0], failing])
    member = pool.members.get(model=failing)
    member.fallback_models = ["sim-fast@ttft=0.2,tps=30,tokens=30"]
    member.save()
    page = logged_in(new_page(), live_stack, alice)
    run = start_run(pool, alice)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/runs/{run.pk}/")

    column = page.locator('.cand[data-member="m2"]')
    # The waits between tries (about 2-3 s in all) show as they happen.
    expect(column).to_have_attribute("data-status", "retrying", timeout=15_000)
    expect(column).to_have_attribute("data-status", "done", timeout=30_000)
    expect(column.locator('[data-field="error"]')).to_be_hidden()
    # The column keeps the member's name; the model that answered is its title.
    expect(column.locator('[data-field="model"]')).to_have_attribute(
        "title", "sim-fast@ttft=0.2,tps=30,tokens=30"
    )
