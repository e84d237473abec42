"""Experiments: script in what people and models write stays text in a real browser, and a key
a careless upstream echoes never reaches an experiment page or export.

XSS: the dataset's name, an item's prompt, expected answer and rubric, the pool (arm labels),
the experiment's name, the models' answers (in the item table's tooltips and on the grading
pages) and a run's error carry script payloads, some built to break out of an attribute. Each
experiment page is opened in Chromium (``tests.browser``'s fixtures) and must not run them,
nor grow the elements they would inject, and must show them as text.

Key leak: on the real stack, an experiment whose members and grader are a server that echoes
the key in its errors; its pages (read in the browser), exports, API and the logs stay clean.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import pytest
from django.test import Client
from playwright.sync_api import Page
from pytest_django.live_server_helper import LiveServer

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.security.test_key_leak_runs import KEY, _assert_clean
from tests.security.test_xss_browser import IMG, JS_LINKS, SCRIPT, TEXT, _check, _logged_in
from tests.workbench.experiments.conftest import finish
from tests.workbench.runs.helpers import simulated_pool
from workbench.accounts.models import User, Workspace
from workbench.experiments.arms import ArmChoice, GraderChoice
from workbench.experiments.datasets import ItemInput
from workbench.experiments.models import Experiment, ExperimentStatus, ItemStatus
from workbench.experiments.services import dataset_create, experiment_advance, experiment_create
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.stack import Stack
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.models import Run, RunStatus

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Breaks out of a double- or single-quoted attribute (the answers sit in title="…").
ATTR = (
    '" onmouseover="window.__xss=7" x="'
    "' onfocus='window.__xss=8' <img src=x onerror=window.__xss=9>"
)
PAYLOAD = f"{SCRIPT}{ATTR}"
FAST = "@ttft=0.01,tps=0"
NAME = f"{IMG}{SCRIPT}"[:80]
# Elements or handlers an escaped payload can never create.
INJECTED = "img[src='x'], svg[onload], [onmouseover], [onfocus], [onerror], script:not([src])"


def _injected(page: Page) -> int:
    # The page's own inline scripts (if any) carry no payload marker.
    return int(
        page.evaluate(
            """sel => [...document.querySelectorAll(sel)].filter(
                e => e.tagName !== 'SCRIPT' || e.textContent.includes('__xss')).length""",
            INJECTED,
        )
    )


def _xss_experiment(alice: User, workspace: Workspace) -> Experiment:
    """An ended experiment with every field a payload, its runs finished by hand."""
    pool = simulated_pool(workspace, alice, ["sim-fast", "sim-slow"])
    pool.name = NAME
    pool.save()
    dataset = dataset_create(
        workspace=workspace,
        user=alice,
        name=NAME,
        items=[
            ItemInput(PAYLOAD, PAYLOAD, "contains"),
            ItemInput(TEXT, SCRIPT, "judge", {"rubric": PAYLOAD}),
            ItemInput(PAYLOAD, "", "human"),
        ],
    )
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=ArmChoice(pool=pool),
        name=NAME, concurrency=32,
    )  # fmt: skip
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("arm", "run"):
        if result.arm.position == 2:  # one arm fails, its error a payload
            finish(result.run, status=RunStatus.FAILED)
            Run.objects.filter(pk=result.run_id).update(error=PAYLOAD)
        else:
            finish(result.run, fused=f"{PAYLOAD}\n\n{JS_LINKS}", texts=[PAYLOAD, PAYLOAD])
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.filter(status=ItemStatus.GRADING).select_related("grade_run"):
        finish(result.grade_run, texts=[f'{{"correct": true, "rationale": {json.dumps(PAYLOAD)}}}'])
    experiment_advance(experiment_id=experiment.pk)
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.FINISHED
    return experiment


def test_it_shows_script_in_experiment_fields_as_text(
    live_server: LiveServer,
    new_page: Callable[[], Page],
    alice: User,
    workspace: Workspace,
    transactional_db: None,
) -> None:
    experiment = _xss_experiment(alice, workspace)
    page = new_page()
    _logged_in(page, live_server, alice)  # type: ignore[arg-type]
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    base = f"{live_server.url}/w/{workspace.slug}"
    e, d = experiment.pk, experiment.dataset_id
    pages = [
        (f"{base}/experiments/", NAME),
        (f"{base}/experiments/datasets/{d}/", SCRIPT),
        (f"{base}/experiments/new/?dataset={d}", None),
        (f"{base}/experiments/{e}/", SCRIPT),
        (f"{base}/experiments/{e}/live/", SCRIPT),
        (f"{base}/experiments/{e}/grade/", PAYLOAD),
        (f"{base}/curation/review/", PAYLOAD),
    ]
    problems: list[str] = []
    for url, shown in pages:
        problems += _check(page, url, dialogs, shown)
        if _injected(page):
            problems.append(f"{url}: {_injected(page)} injected element(s) or handler(s)")
        dialogs.clear()
    # The answers and the run's error were on the pages, where the payloads would have landed.
    page.goto(f"{base}/experiments/{e}/")
    titles = " ".join(page.eval_on_selector_all("[title]", "els => els.map(e => e.title)"))
    assert ATTR in titles, "the answers and errors are in the item table's tooltips, intact"
    assert not problems, "\n".join(problems)


def test_it_would_notice_an_attribute_breaking_payload(
    live_server: LiveServer, new_page: Callable[[], Page]
) -> None:
    """The injected-element detector works: an unescaped title shows up."""
    page = new_page()
    body = f"<span title=\"{ATTR}\">x</span><span title='{ATTR}'>y</span>"
    page.route("**/unsafe", lambda r: r.fulfill(status=200, content_type="text/html", body=body))
    page.goto(f"{live_server.url}/unsafe")
    assert _injected(page) >= 2


# --- key leak -----------------------------------------------------------------------------------


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    up = Upstream(valid_keys=[KEY])
    up.start_in_thread()
    yield up
    up.stop_thread()


def test_it_keeps_an_echoed_key_out_of_experiment_pages_and_exports(
    live_stack: Stack,
    upstream: Upstream,
    new_page: Callable[[], Page],
    alice: User,
    workspace: Workspace,
) -> None:
    upstream.script("leaky", Script(status=400, echo_key=True, error_message="bad request"))
    upstream.script(
        "leaky-stream",
        Script(tokens=30, fail="stream_error", fail_after=3, error_status=400, echo_key=True,
               error_message="stream broke"),
    )  # fmt: skip
    sim = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="sim", scope=Scope.WORKSPACE
    )
    remote = credential_create(
        workspace=workspace, user=alice, provider="openai_compatible", label="careless",
        scope=Scope.WORKSPACE, base_url=f"{upstream.url}/v1", keys=[KEY],
    )  # fmt: skip
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="leak check",
            members=[
                MemberInput(credential_id=sim.pk, model=f"sim-fast{FAST}", custom_model=True),
                MemberInput(credential_id=remote.pk, model="leaky", custom_model=True),
                MemberInput(credential_id=remote.pk, model="leaky-stream", custom_model=True),
            ],
            judge=JudgeInput(credential_id=sim.pk, model=f"sim-judge{FAST}", custom_model=True),
        ),
    )  # fmt: skip
    dataset = dataset_create(
        workspace=workspace,
        user=alice,
        name="leaks",
        items=[
            ItemInput("What is 2 + 2?", "4", "number"),
            ItemInput("Why is the sky blue?", "scattering", "judge", {"rubric": "Names it."}),
            ItemInput("Write a line about keys.", "", "human"),
        ],
    )
    # The grader is the careless server too: its failed grading calls echo the key.
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=ArmChoice(pool=pool),
        grader=GraderChoice(remote.pk, "leaky"), concurrency=16,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while Experiment.objects.get(pk=experiment.pk).status != ExperimentStatus.FINISHED:
        assert time.monotonic() < deadline, "the experiment did not finish"
        time.sleep(0.2)

    # The faults happened as scripted, and their errors reached the experiment's results.
    assert upstream.requests_for("leaky")[0].headers.get("authorization") == f"Bearer {KEY}"
    failed = experiment.results.filter(status=ItemStatus.FAILED, arm__label="leaky alone")
    assert failed.count() == 3 and all("bad request" in r.detail for r in failed), [
        r.detail for r in failed
    ]
    ungraded = experiment.results.filter(item__checker="judge", grade_run__isnull=False)
    assert ungraded.exists() and all("no usable grade" in r.detail for r in ungraded)
    stored = list(experiment.results.values_list("detail", "answer"))
    _assert_clean("the stored results", json.dumps(stored))

    page = new_page()
    _logged_in(page, live_stack, alice)
    base = f"{live_stack.url}/w/{workspace.slug}"
    for url in (
        f"{base}/experiments/",
        f"{base}/experiments/{experiment.pk}/",
        f"{base}/experiments/{experiment.pk}/live/",
        f"{base}/experiments/{experiment.pk}/grade/",
        f"{base}/experiments/datasets/{dataset.pk}/",
        f"{base}/curation/review/",
    ):
        response = page.goto(url)
        assert response is not None and response.status == 200, url
        _assert_clean(url, page.content())
    client = Client()
    client.force_login(alice)
    api = f"/api/v1/workspaces/{workspace.slug}/experiments"
    for url in (
        f"/w/{workspace.slug}/experiments/{experiment.pk}/results.csv",
        f"/w/{workspace.slug}/experiments/{experiment.pk}/results.json",
        f"{api}/{experiment.pk}/results",
        f"{api}/{experiment.pk}",
        api,
    ):
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        _assert_clean(url, response.content.decode())
    logs = {p.name: p.read_text(errors="replace") for p in live_stack.log_dir.glob("*.log")}
    for name, text in logs.items():
        _assert_clean(f"the log {name}", text)
