"""Script in user-given names and texts stays text, in a real browser (Chromium).

Workspace names, pool names and descriptions, credential labels, token and dataset names, run
prompts, comments, and judgments' rationales and gold answers carry script payloads; every page
that shows them is opened and must neither run them (``window.__xss`` stays undefined, no
dialog opens) nor link to ``javascript:``. The payloads must show as text, so a page that drops
them cannot pass. Tags allow only ``[a-z0-9_-]``: one typed into the tag form is refused, and
the refusal, which quotes it, shows it as text.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from playwright.sync_api import Page

from tests.workbench.runs.pages import finished_run
from workbench.accounts import services as accounts
from workbench.accounts.models import Membership, Role
from workbench.curation.models import Choice, RunTag
from workbench.curation.services import comment_create, judgment_save, share_link_create
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
TAG = "<svg/onload=window.__xss=7>"  # one word, as a tag would be


def _logged_in(page: Page, stack: Stack, user: object) -> Page:
    client = Client()
    client.force_login(user)  # type: ignore[arg-type]
    page.context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": stack.url}]
    )
    return page


def _check(page: Page, url: str, dialogs: list[str], expect_text: str | None) -> list[str]:
    response = page.goto(url)
    assert response is not None and response.status == 200, f"{url}: {response and response.status}"
    page.wait_for_load_state("networkidle")
    return _check_current(page, dialogs, expect_text)


def _check_current(page: Page, dialogs: list[str], expect_text: str | None) -> list[str]:
    """What is wrong with the page as it is now: a payload that ran, a ``javascript:`` link, a
    dialog, or the payload not shown as text."""
    problems = []
    url = page.url
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
    judgment_save(
        run=run, user=bob, choice=Choice.PICK, winner="m1", rationale=TEXT, gold_answer=TEXT
    )
    judgment_save(run=run, user=alice, choice=Choice.TIE, rationale=IMG, gold_answer=SCRIPT)
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
        (f"{base}/w/{ws}/runs/{run.pk}/curation/", SCRIPT),
        (f"{base}/w/{ws}/curation/review/", None),
        (f"{base}/w/{ws}/curation/leaderboard/", None),
        (f"{base}/w/{ws}/judges/", None),
        (f"{base}/w/{ws}/tokens/", NAME),
        (f"{base}/w/{ws}/curation/export/", None),
        (f"{base}/w/{ws}/usage/", None),
        (f"{base}/w/{ws}/experiments/", None),
        (f"{base}/w/{ws}/experiments/datasets/{dataset.pk}/", NAME),
        (f"{base}/s/{share.token}/", SCRIPT),
    ]
    problems: list[str] = []
    for url, shown in pages:
        problems += _check(page, url, dialogs, shown)
        dialogs.clear()
    assert not problems, "\n".join(problems)

    # The judgments' rationales and gold answers, each where it belongs, as text.
    page.goto(f"{base}/w/{ws}/runs/{run.pk}/")
    page.wait_for_load_state("networkidle")
    people = page.inner_text("[data-testid=people]")
    assert SCRIPT in people and IMG in people, "both rationales show as text"
    for author in ("bob", "alice"):
        entry = page.locator(f"[data-testid=gold-by-{author}]")
        entry.evaluate("details => { details.open = true; }")  # only the newest starts open
        assert SCRIPT in entry.inner_text(), f"{author}'s gold answer shows as text"
    assert page.locator("[data-testid=gold-answers] :is(script, img, svg, a)").count() == 0

    # A tag payload typed into the tag form: refused, and the refusal shows it as text.
    page.fill("[data-testid=tags]", f"regression {TAG}")
    with page.expect_response(lambda r: r.url.endswith("/tags/")):
        page.click(".tag-form button[type=submit]")
    page.get_by_text("is not a tag").first.wait_for()
    problems = _check_current(page, dialogs, f"“{TAG}” is not a tag")
    assert not problems, "\n".join(problems)
    assert not RunTag.objects.filter(run=run).exists(), "a refused list saves no tag"
    page.fill("[data-testid=tags]", "regression math")
    with page.expect_response(lambda r: r.url.endswith("/tags/")):
        page.click(".tag-form button[type=submit]")
    assert sorted(RunTag.objects.filter(run=run).values_list("name", flat=True)) == [
        "math", "regression",
    ]  # fmt: skip


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
