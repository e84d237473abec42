"""Every route × anonymous, outsider (charlie), viewer (vera), member (bob), owner (alice).

Generated from the URL conf and the OpenAPI spec; the expectations come from the tables in
``tests/security/routes.py``, so a new route without an entry fails here, by name. Every
request runs in a savepoint that is rolled back, so a delete by bob cannot hide the route from
alice.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import reverse

from tests.security import routes
from tests.security.conftest import World
from workbench.accounts.models import ROLE_RANK, User
from workbench.api.api import api
from workbench.lib import health

pytestmark = pytest.mark.django_db

PEOPLE = ("anonymous", "charlie", "vera", "bob", "alice")
ROLE_OF = {"vera": "viewer", "bob": "member", "alice": "owner"}
PAGE_NAMES = [name for name, _ in routes.page_routes()]
SPEC = api.get_openapi_schema()
OPERATIONS = [
    (method.upper(), path, op["operationId"])
    for path, ops in SPEC["paths"].items()
    for method, op in ops.items()
]


def _request(user: User | None, send: Callable[[Client], Any]) -> Any:
    """One request by a fresh client, its writes rolled back."""
    with transaction.atomic():
        client = Client()
        if user is not None:
            client.force_login(user)
        response = send(client)
        transaction.set_rollback(True)
    return response


def _is_login_redirect(response: Any) -> bool:
    return response.status_code == 302 and "/login/" in response["Location"]


def _check(who: str, rule: str | None, method: str, response: Any) -> str | None:
    """What is wrong with ``response`` for ``who`` under ``rule``, or None."""
    status = response.status_code
    if status >= 500:
        return f"server error {status}"
    if rule is None:  # method not allowed: 405, or refused earlier by the access check
        if status == 405:
            return None
        if who == "anonymous" and _is_login_redirect(response):
            return None
        if who != "anonymous" and status in (403, 404):
            return None
        return f"expected 405 for a {method} that is not allowed, got {status}"
    if rule == routes.HEALTH:
        return None if status in (200, 503) else f"health answered {status}"
    if rule == routes.PUBLIC:
        return None if status not in (401, 403, 404) else f"public page answered {status}"
    if rule == routes.TOKEN:
        return None if status == 401 else f"expected 401 without a bearer token, got {status}"
    if who == "anonymous":
        return None if _is_login_redirect(response) else f"expected a login redirect, got {status}"
    if rule == routes.LOGIN:
        return None if status not in (401, 403, 404) else f"logged-in user got {status}"
    if who == "charlie":
        return None if status == 404 else f"expected 404 for an outsider, got {status}"
    refused = 403
    if rule == routes.ADMIN_OR_HIDDEN:
        rule, refused = routes.ADMIN, 404
    if ROLE_RANK[ROLE_OF[who]] < ROLE_RANK[rule]:
        return None if status == refused else f"expected {refused} below {rule}, got {status}"
    allowed = status < 400 or (method == "POST" and status in (400, 409, 410, 422))
    return None if allowed else f"expected access at {rule}, got {status}"


def test_it_has_a_rule_for_every_page_route_and_no_stale_ones() -> None:
    missing = [name for name in PAGE_NAMES if name not in routes.PAGES]
    stale = [name for name in routes.PAGES if name not in PAGE_NAMES]
    assert not missing, f"routes without an access rule in tests/security/routes.py: {missing}"
    assert not stale, f"rules for routes that no longer exist: {stale}"


def test_it_has_a_rule_for_every_api_operation_and_no_stale_ones() -> None:
    ids = [op for _m, _p, op in OPERATIONS]
    missing = [op for op in ids if op not in routes.API]
    stale = [op for op in routes.API if op not in ids]
    assert not missing, f"API operations without a rule in tests/security/routes.py: {missing}"
    assert not stale, f"rules for API operations that no longer exist: {stale}"


@pytest.mark.parametrize("name", PAGE_NAMES)
def test_it_grants_each_page_only_to_whom_its_rule_allows(
    name: str, world: World, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.METRICS_TOKEN = "metrics-secret-for-tests"
    monkeypatch.setattr(health, "_check_worker", lambda: None)  # no 1 s ping per request
    assert name in routes.PAGES, f"route {name!r} has no access rule in tests/security/routes.py"
    kwargs = dict(routes.page_routes())[name]
    url = reverse(name, kwargs=routes.kwarg_values(name, kwargs, world)) + routes.QUERY.get(
        name, ""
    )
    data = {k: v.format(ws=world.workspace.slug) for k, v in routes.POST_DATA.get(name, {}).items()}
    problems = []
    for method, rule in zip(("GET", "POST"), routes.PAGES[name], strict=True):
        for who in PEOPLE:
            user = None if who == "anonymous" else getattr(world, who)
            response = _request(
                user, lambda c, m=method: c.get(url) if m == "GET" else c.post(url, data)
            )
            problem = _check(who, rule, method, response)
            if problem:
                problems.append(f"{method} {url} as {who}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[o for *_, o in OPERATIONS]
)
def test_it_grants_each_api_operation_only_to_whom_its_rule_allows(
    method: str, path: str, operation: str, world: World
) -> None:
    assert operation in routes.API, f"API operation {operation!r} has no rule"
    rule = routes.API[operation]
    values = {
        "ws": world.workspace.slug,
        "credential_id": world.credential.pk,
        "slug": world.pool.slug,
        "run_id": world.run.pk,
        "experiment_id": world.experiment.pk,
    }
    url = "/api/v1" + path.removeprefix("/api/v1").format(**values)
    body = routes.api_body(operation, world)
    statuses = {}
    for who in PEOPLE:
        user = None if who == "anonymous" else getattr(world, who)
        response = _request(
            user,
            lambda c: c.generic(
                method, url, json.dumps(body or {}), content_type="application/json"
            ),
        )
        statuses[who] = response.status_code
    if body is not None:
        assert statuses["alice"] < 300, f"the body for {operation} is valid: {statuses}"
    # django-ninja validates a body before the view checks access: a body that is invalid for
    # alice too (no valid one given above) says nothing about the workspace, so 422 is as good
    # as a refusal.
    invalid_for_all = statuses["alice"] == 422
    problems = []
    for who, status in statuses.items():
        if who == "anonymous":
            expected_ok = status == 401
        elif who == "charlie":
            expected_ok = status == 404 or (invalid_for_all and status == 422)
        elif ROLE_RANK[ROLE_OF[who]] < ROLE_RANK[rule]:
            expected_ok = status == 403 or (invalid_for_all and status == 422)
        else:
            expected_ok = status < 400 or status in (400, 409, 422)
        if not expected_ok or status >= 500:
            problems.append(f"{method} {url} as {who} (needs {rule}): got {status}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", routes.admin_pages())
def test_it_keeps_the_admin_site_to_staff(name: str, make_user: Callable[..., User]) -> None:
    url = reverse(name)
    staff = make_user("root")
    staff.is_staff = staff.is_superuser = True
    staff.save()
    for user in (None, make_user("plain")):
        response = _request(user, lambda c: c.get(url))
        assert response.status_code == 302 and "/admin/login/" in response["Location"], (
            f"{url} as {user}: {response.status_code}"
        )
    assert _request(staff, lambda c: c.get(url)).status_code == 200


def test_it_serves_static_files_and_health_to_anyone() -> None:
    assert Client().get("/healthz").status_code in (200, 503)
    response = Client().get("/static/css/app.css")
    assert response.status_code == 200
