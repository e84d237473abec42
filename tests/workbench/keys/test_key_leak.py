"""The raw keys of a seeded workspace never appear in any page, fragment, API response, admin
page, error or log line, for any of its people."""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Callable, Iterable
from urllib.parse import quote, urljoin, urlsplit

import pytest
from django.test import Client

from fusion.testing.scripts import Script
from fusion.testing.upstream import MODELS_KEY, Upstream
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import credential_check
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.models import Pool
from workbench.pools.services import pool_create

from .conftest import KEY_A, KEY_B

pytestmark = pytest.mark.django_db

KEY_C = "sk-ant-LEAKCANARY-cccccccccccccccc-E5F6"
KEY_D = "AIzaLEAKCANARYdddddddddddddddd-G7H8"
KEY_E = "sk-proj-LEAKCANARY-eeeeeeeeeeeeeeee-J9K0"
KEYS = (KEY_A, KEY_B, KEY_C, KEY_D, KEY_E)
MAX_PAGES = 400
_HREF = re.compile(r'(?:href|hx-get)="([^"#]+)"')


def _forms(key: str) -> set[str]:
    """A key, its secret part (all but the last four shown) and its URL-encoded form."""
    return {key, key[:-4], quote(key, safe=""), "LEAKCANARY"}


def _assert_clean(where: str, text: str) -> None:
    for key in KEYS:
        for form in _forms(key):
            assert form not in text, f"a key leaked into {where}"


@pytest.fixture
def seeded(
    workspace: Workspace,
    alice: User,
    bob: User,
    vera: User,
    make_credential: Callable[..., Credential],
    upstream: Upstream,
) -> dict[str, object]:
    shared = make_credential(
        alice,
        provider="openai_compatible",
        label="Team upstream",
        scope=Scope.WORKSPACE,
        base_url=f"{upstream.url}/v1",
        keys=[KEY_A, KEY_B],
    )
    claude = make_credential(
        alice, provider="anthropic", label="Claude", scope=Scope.WORKSPACE,
        base_url=upstream.url, keys=[KEY_C],
    )  # fmt: skip
    gemini = make_credential(
        alice, provider="gemini", label="Alice's Gemini", base_url=upstream.url, keys=[KEY_D]
    )
    bobs = make_credential(bob, provider="openai", label="Bob's OpenAI", keys=[KEY_E])
    for credential in (shared, claude, gemini):
        credential_check(credential=credential, user=alice)
    # A careless server that puts the key it was sent into its error message.
    upstream.script(MODELS_KEY, Script(status=401, echo_key=True, error_message="bad key"))
    credential_check(credential=claude, user=alice)
    upstream.reset()
    credential_check(credential=shared, user=bob)

    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="Mixed",
            mode="merge",
            members=[
                MemberInput(credential_id=shared.pk, model="up-small"),
                MemberInput(credential_id=claude.pk, model="up-large"),
                MemberInput(credential_id=gemini.pk, model="up-small"),
            ],
            judge=JudgeInput(credential_id=shared.pk, model="up-large"),
        ),
    )
    return {"credentials": [shared, claude, gemini, bobs], "pool": pool}


def _crawl(client: Client, starts: Iterable[str], workspace: Workspace) -> int:
    """GET every page reachable from ``starts`` inside the workspace and the API."""
    prefixes = (f"/w/{workspace.slug}/", "/api/v1/")
    queue, seen = deque(starts), set(starts)
    while queue:
        url = queue.popleft()
        response = client.get(url)
        raw = b"".join(response.streaming_content) if response.streaming else response.content
        body = raw.decode(errors="replace")
        _assert_clean(url, body)
        for header, value in response.items():
            _assert_clean(f"{url} header {header}", value)
        if "html" not in response.get("Content-Type", ""):
            continue
        for link in _HREF.findall(body):
            target = urljoin(url, link.replace("&amp;", "&"))
            path = urlsplit(target).path + (
                f"?{urlsplit(target).query}" if urlsplit(target).query else ""
            )
            if path.startswith(prefixes) and path not in seen and len(seen) < MAX_PAGES:
                seen.add(path)
                queue.append(path)
    return len(seen)


def _api_paths(client: Client, workspace: Workspace, seeded: dict[str, object]) -> list[str]:
    """Every GET route of the API, with the seeded objects' ids filled in."""
    schema = client.get("/api/v1/openapi.json").json()
    pool = seeded["pool"]
    assert isinstance(pool, Pool)
    urls = []
    for path, operations in schema["paths"].items():
        if "get" not in operations:
            continue
        ids = [c.pk for c in seeded["credentials"]] if "{credential_id}" in path else [None]  # type: ignore[attr-defined]
        for pk in ids:
            url = path.replace("{ws}", workspace.slug).replace("{slug}", pool.slug)
            urls.append(url.replace("{credential_id}", str(pk)))
    return urls


def test_it_never_shows_a_raw_key_anywhere(
    seeded: dict[str, object],
    workspace: Workspace,
    alice_client: Client,
    bob_client: Client,
    vera_client: Client,
    make_user: Callable[..., User],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    ws = workspace.slug
    credentials = seeded["credentials"]
    pool = seeded["pool"]
    assert isinstance(pool, Pool) and isinstance(credentials, list)
    starts = [
        f"/w/{ws}/",
        f"/w/{ws}/keys/",
        f"/w/{ws}/pools/",
        f"/w/{ws}/pools/new/",
        f"/w/{ws}/pools/new/?preset=quality",
        f"/w/{ws}/pools/{pool.slug}/edit/",
        *(f"/w/{ws}/keys/{c.pk}/" for c in credentials),
        "/api/v1/docs",
    ]
    for client in (alice_client, bob_client, vera_client):
        crawled = _crawl(client, [*starts, *_api_paths(client, workspace, seeded)], workspace)
        assert crawled > 15

    # Fragments and error pages that echo what was sent.
    htmx = {"HX-Request": "true"}
    shared = credentials[0]
    for client in (alice_client, bob_client):
        for name in ("test", "refresh"):
            response = client.post(f"/w/{ws}/keys/{shared.pk}/{name}/", headers=htmx)
            _assert_clean(name, response.content.decode())
    response = alice_client.post(
        f"/w/{ws}/keys/",
        {"provider": "openai", "label": "Team upstream", "scope": "workspace", "keys": KEY_A},
    )
    _assert_clean("the add form shown again with an error", response.content.decode())
    response = alice_client.post(
        f"/w/{ws}/keys/{shared.pk}/",
        {"label": "", "add_keys": f"{KEY_C}\nnot a key"},
    )
    _assert_clean("the edit form shown again with an error", response.content.decode())
    for body in (
        {"provider": "openai", "label": "x", "keys": [KEY_A, "sk-LEAKCANARY bad"]},
        {"provider": "openai", "label": "x", "keys": KEY_A},
        {"provider": "openai", "label": "x" * 200, "keys": [KEY_A]},
        {"provider": KEY_B, "label": "x", "keys": [KEY_B]},
    ):
        response = alice_client.post(
            f"/api/v1/workspaces/{ws}/credentials",
            data=json.dumps(body),
            content_type="application/json",
        )
        assert response.status_code in (400, 422)
        _assert_clean(f"API error {response.status_code}", response.content.decode())
    response = alice_client.post(f"/api/v1/workspaces/{ws}/credentials/{shared.pk}/test")
    _assert_clean("API test", response.content.decode())

    # The admin, for a superuser.
    root = make_user("root")
    root.is_staff = root.is_superuser = True
    root.save()
    admin = Client()
    admin.force_login(root)
    for url in [
        "/admin/keys/credential/",
        *(f"/admin/keys/credential/{c.pk}/change/" for c in credentials),
        "/admin/keys/modelprice/",
        "/admin/pools/pool/",
    ]:
        response = admin.get(url)
        assert response.status_code in (200, 404), url
        _assert_clean(url, response.content.decode())

    _assert_clean("the logs", caplog.text)
    out, err = capsys.readouterr()
    _assert_clean("stdout/stderr", out + err)
