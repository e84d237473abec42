"""Script in user-given names and texts stays text, in a real browser (Chromium).

Workspace names, pool names and descriptions, credential labels, token and dataset names, run
prompts and comments carry script payloads; every page that shows them is opened and must
neither run them (``window.__xss`` stays undefined, no dialog opens) nor link to
``javascript:``. The payloads must show as text, so a page that drops them cannot pass.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from playwright.sync_api import Page

from tests.workbench.runs.pages import finished_run
from workbench.accounts import services as accounts
from workbench.accounts.models import Membership, Role
from workbench.curation.services import comment_create, share_link_create
from workbench.experiments.datasets import ItemInput
from workbench.experiments.services import dataset_create
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.lib.stack import Stack
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.tokens.services import token_create

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SCRIPT = "<script>window.__xss=1;alert(1)</script>"
IMG = '<img src=x onerror="window.__xss=2;alert(2)">'
NAME = f"{IMG}{SCRIPT}"[:80]
JS_LINKS = (
    "[click me](javascript:window.__xss=3) "
    '<a href="javascript:window.__xss=4">raw</a> '
    '<a href=" JaVaScRiPt:window.__xss=5">spaced</a> '
    "<svg onload=window.__xss=6></svg>"
)
TEXT = f"{SCRIPT}\n\n{IMG}\n\n{JS_LINKS}"


def _logged_in(page: Page, stack: Stack, user: object) -> Page:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": stack.url}]
    )
    return page


def _check(page: Page, url: str, dialogs: list[str], expect_text: str | None) -> list[str]:
    problems = []
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    page.wait_for_load_state("networkidle")
    if page.evaluate("typeof window.__xss") != "undefined":
        problems.append(f"{url}: a payload ran (window.__xss = {page.evaluate('window.__xss')})")
    hrefs = page.eval_on_selector_all(
        "[href], [src], [action], [formaction]",
        "els => els.flatMap(e => ['href', 'src', 'action', 'formaction']"
        ".map(a => e.getAttribute(a)).filter(Boolean))",
    )
    bad = [h for h in hrefs if h.strip().lower().replace("\t", "").startswith("javascript:")]
    if bad:
        problems.append(f"{url}: javascript: links {bad}")
    if dialogs:
        problems.append(f"{url}: dialogs opened {dialogs}")
    if expect_text is not None and expect_text not in page.inner_text("body"):
        problems.append(f"{url}: the payload {expect_text!r} is not shown as text")
    return problems


def test_it_shows_script_in_user_fields_as_text_on_every_page(
    live_stack: Stack, new_page: Callable[[], Page]
) -> None:
    alice = accounts.user_signup(
        username="alice", email="alice@example.com", password="a-long-test-passphrase-9"
    )
    workspace = accounts.workspace_create(owner=alice, name=NAME)
    other = accounts.workspace_create(owner=alice, name=SCRIPT)  # for the switcher
    bob = accounts.user_signup(
        username="bob", email="bob@example.com", password="a-long-test-passphrase-9"
    )
    Membership.objects.create(workspace=workspace, user=bob, role=Role.MEMBER)
    credential = credential_create(
        workspace=workspace,
        user=alice,
        provider="simulated",
        label=NAME[:60],
        scope=Scope.WORKSPACE,
    )
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name=NAME,
            description=JS_LINKS,
            system_prompt=TEXT,
            members=[
                MemberInput(credential_id=credential.pk, model="sim-fast", custom_model=True),
                MemberInput(credential_id=credential.pk, model="sim-slow", custom_model=True),
            ],
            judge=JudgeInput(credential_id=credential.pk, model="sim-judge", custom_model=True),
        ),
    )
    run = finished_run(workspace, alice, pool=pool, prompt=TEXT, texts={"m1": TEXT, "m2": TEXT})
    comment_create(run=run, user=bob, body=TEXT)
    token_create(workspace=workspace, user=alice, name=NAME)
    dataset = dataset_create(
        workspace=workspace, user=alice, name=NAME, items=[ItemInput(TEXT, SCRIPT, "exact")]
    )
    share = share_link_create(run=run, user=alice)

    page = _logged_in(new_page(), live_stack, alice)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    base, ws = live_stack.url, workspace.slug
    pages = [
        (f"{base}/workspaces/", SCRIPT),
        (f"{base}/w/{ws}/", NAME),
        (f"{base}/w/{other.slug}/", SCRIPT),
        (f"{base}/w/{ws}/settings/", None),
        (f"{base}/w/{ws}/members/", None),
        (f"{base}/w/{ws}/pools/", NAME),
        (f"{base}/w/{ws}/pools/{pool.slug}/", NAME),
        (f"{base}/w/{ws}/pools/{pool.slug}/edit/", None),
        (f"{base}/w/{ws}/keys/", NAME[:60]),
        (f"{base}/w/{ws}/keys/{credential.pk}/", NAME[:60]),
        (f"{base}/w/{ws}/runs/", None),
        (f"{base}/w/{ws}/runs/new/", None),
        (f"{base}/w/{ws}/runs/{run.pk}/", SCRIPT),
        (f"{base}/w/{ws}/runs/{run.pk}/curation/", None),
        (f"{base}/w/{ws}/curation/review/", None),
        (f"{base}/w/{ws}/curation/leaderboard/", None),
        (f"{base}/w/{ws}/judges/", None),
        (f"{base}/w/{ws}/tokens/", NAME),
        (f"{base}/w/{ws}/usage/", None),
        (f"{base}/w/{ws}/experiments/", None),
        (f"{base}/w/{ws}/experiments/datasets/{dataset.pk}/", NAME),
        (f"{base}/s/{share.token}/", None),
    ]
    problems: list[str] = []
    for url, shown in pages:
        problems += _check(page, url, dialogs, shown)
        dialogs.clear()
    assert not problems, "\n".join(problems)


def test_it_would_notice_a_payload_that_runs(
    live_stack: Stack, new_page: Callable[[], Page]
) -> None:
    """The detector works: the same checks flag a page where the payload does run."""
    page = new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.route(
        "**/unsafe", lambda route: route.fulfill(status=200, content_type="text/html", body=TEXT)
    )
    problems = _check(page, f"{live_stack.url}/unsafe", dialogs, None)
    assert any("a payload ran" in p for p in problems)
    assert any("javascript: links" in p for p in problems)
    assert any("dialogs opened" in p for p in problems)
