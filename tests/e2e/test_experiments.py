"""An experiment in a real browser against the real stack (daphne + a Celery worker): install
the sample dataset, choose two arms, see the estimate first, start, watch the progress bar
fill, read the results table, the chart and the per-item table, and grade the answers that
wait for people."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from django.test import Client
from playwright.sync_api import Page, expect

from tests.workbench.runs.helpers import simulated_pool
from workbench.accounts import services as accounts
from workbench.accounts.models import User, Workspace
from workbench.experiments.models import Experiment
from workbench.lib.stack import Stack
from workbench.runs.models import ProviderCall

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "a-long-test-passphrase-9"
TINY = ["sim-fast@ttft=0.01,tps=0,tokens=10", "sim-balanced@ttft=0.01,tps=0,tokens=10"]


@pytest.fixture
def alice(live_stack: Stack) -> User:
    return accounts.user_signup(username="alice", email="alice@example.com", password=PASSWORD)


@pytest.fixture
def workspace(alice: User) -> Workspace:
    return accounts.workspace_create(owner=alice, name="Acme")


def logged_in(page: Page, stack: Stack, user: User) -> Page:
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": stack.url}]
    )
    return page


def test_it_runs_the_sample_dataset_on_two_arms_and_shows_the_results(
    live_stack: Stack,
    alice: User,
    workspace: Workspace,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
) -> None:
    pool = simulated_pool(workspace, alice, TINY, judge="sim-judge@ttft=0.01,tps=0,tokens=10")
    page = logged_in(new_page(), live_stack, alice)
    page.goto(f"{live_stack.url}/w/{workspace.slug}/experiments/")
    screenshot(page, "01-empty")
    page.get_by_test_id("install-sample").click()
    expect(page.get_by_test_id("items").locator("tbody tr")).to_have_count(13)
    screenshot(page, "02-dataset")

    page.get_by_role("link", name="Run an experiment").click()
    # The only pool, in its own mode, is ticked already; add self-consistency, drop the solos.
    expect(page.get_by_label(f"{pool.name}: Best of")).to_be_checked()
    expect(page.get_by_label(f"{pool.name}: Merge")).not_to_be_checked()
    page.get_by_label("Each member model alone").uncheck()
    page.get_by_label("Self-consistency").check()
    page.get_by_label("Samples (N)").fill("2")
    page.get_by_label("Runs at once").fill("8")
    expect(page.get_by_test_id("start")).to_have_count(0)  # the estimate comes first
    screenshot(page, "03-form")
    page.get_by_test_id("estimate").click()
    estimate = page.get_by_test_id("experiment-estimate")
    expect(estimate).to_contain_text(re.compile(r"≤ \$\d"))
    expect(estimate.locator("tbody tr")).to_have_count(3)  # two arms and the grading
    expect(page.get_by_test_id("estimate-grading")).to_contain_text("judge (rubric)")
    screenshot(page, "03-estimate")
    page.get_by_test_id("start").click()

    expect(page.get_by_test_id("progress")).to_be_visible()
    screenshot(page, "035-started")
    expect(page.get_by_test_id("experiment-status").first).to_have_text("Finished", timeout=60_000)
    expect(page.get_by_test_id("progress-done")).to_have_text("26")
    expect(page.get_by_test_id("arm-results").locator("tbody tr")).to_have_count(2)
    expect(page.get_by_test_id("chart").locator("circle")).to_have_count(2)
    expect(page.get_by_test_id("item-results").locator("tbody tr")).to_have_count(13)
    expect(page.get_by_test_id("item-results")).to_contain_text("judge (rubric)")
    expect(page.get_by_test_id("comparisons")).to_contain_text("not significant")
    expect(page.get_by_test_id("correction")).to_contain_text("Holm–Bonferroni")
    run_link = page.get_by_test_id("item-results").get_by_role("link", name="run").first
    assert "/runs/" in (run_link.get_attribute("href") or "")
    screenshot(page, "04-results")

    # The judge item was graded by a grading run of its own, its call recorded and priced.
    experiment = Experiment.objects.get()
    graded = experiment.results.filter(item__checker="judge")
    assert graded.count() == 2 and all(r.correct is not None for r in graded)
    calls = ProviderCall.objects.filter(run__experiment_grade__experiment=experiment)
    assert calls.count() == 2 and all(c.cost is not None and c.cost > 0 for c in calls)

    # The poem waits for people: grade it from the experiment page, blind.
    expect(page.get_by_test_id("awaiting-grading")).to_contain_text("2 await grading")
    page.get_by_test_id("awaiting-grading").click()
    expect(page.get_by_test_id("grade-item")).to_have_count(2)
    screenshot(page, "045-grading")
    page.get_by_test_id("grade-item").first.get_by_label("Note (optional)").fill("it rhymes")
    page.get_by_test_id("grade-item").first.get_by_test_id("grade-correct").click()
    expect(page.get_by_test_id("grade-item")).to_have_count(1)
    page.get_by_role("link", name=experiment.name).click()
    expect(page.get_by_test_id("awaiting-grading")).to_contain_text("1 awaits grading")
    assert experiment.results.filter(item__checker="human", correct=True).count() == 1

    page.goto(f"{live_stack.url}/w/{workspace.slug}/experiments/")
    expect(page.get_by_test_id("experiments").locator("tbody tr")).to_have_count(1)
    screenshot(page, "05-index")
    page.goto(f"{live_stack.url}/w/{workspace.slug}/experiments/datasets/upload/")
    bad = b'{"prompt": "ok", "expected": "1"}\n{"prompt": 3}\n'
    page.get_by_label("File").set_input_files(
        files=[{"name": "bad.jsonl", "mimeType": "application/json", "buffer": bad}]
    )
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_test_id("upload-problems")).to_contain_text("Line 2: the prompt is missing")
    screenshot(page, "06-upload-error")
