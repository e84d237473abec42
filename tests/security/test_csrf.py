"""CSRF: every form refuses a POST without the token, and so does the API with a session.

The page routes come from the same URL walk and rules as the authorization matrix; routes for
bearer tokens (the OpenAI/Anthropic gateway, metrics) carry no cookie to forge and are exempt.
"""

from __future__ import annotations

import json

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from tests.security import routes
from tests.security.conftest import World

pytestmark = pytest.mark.django_db

POSTABLE = [
    name
    for name, _kwargs in routes.page_routes()
    if routes.PAGES.get(name, (None, None))[1] not in (None, routes.TOKEN, routes.HEALTH)
]


def _strict_client(world: World) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.alice)
    return client


def _is_csrf_refusal(response: HttpResponse) -> bool:
    return response.status_code == 403 and b"CSRF" in response.content


def test_it_finds_the_forms_to_check() -> None:
    assert len(POSTABLE) > 30, POSTABLE  # the walk found the app's forms, not nothing


@pytest.mark.parametrize("name", POSTABLE)
def test_it_refuses_a_form_post_without_the_token(name: str, world: World) -> None:
    kwargs = dict(routes.page_routes())[name]
    url = reverse(name, kwargs=routes.kwarg_values(name, kwargs, world))
    client = _strict_client(world)
    client.get(reverse("accounts:workspace_list"))  # a CSRF cookie, as a browser would have
    data = {k: v.format(ws=world.workspace.slug) for k, v in routes.POST_DATA.get(name, {}).items()}

    response = client.post(url, data)

    assert _is_csrf_refusal(response), f"POST {url} without a CSRF token: {response.status_code}"


def test_it_accepts_a_form_post_with_the_token(world: World) -> None:
    """The check above is about the token: the same client with it gets through."""
    client = _strict_client(world)
    client.get(reverse("accounts:workspace_list"))
    token = client.cookies["csrftoken"].value
    url = reverse("tokens:index", kwargs={"ws": world.workspace.slug})
    response = client.post(url, {"name": "with token", "csrfmiddlewaretoken": token})
    assert response.status_code == 200


def test_it_refuses_an_api_write_by_session_without_the_csrf_header(world: World) -> None:
    client = _strict_client(world)
    client.get(reverse("accounts:workspace_list"))
    url = f"/api/v1/workspaces/{world.workspace.slug}/pools/{world.pool.slug}/clone"

    refused = client.post(url, content_type="application/json")
    accepted = client.post(
        url, content_type="application/json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value
    )

    assert refused.status_code == 403, refused.content
    assert accepted.status_code == 201, accepted.content


def test_it_lets_bearer_token_requests_through_without_csrf(world: World) -> None:
    client = Client(enforce_csrf_checks=True)
    bearer = {"HTTP_AUTHORIZATION": f"Bearer {world.raw_token}"}
    url = f"/api/v1/workspaces/{world.workspace.slug}/pools/{world.pool.slug}/clone"

    api = client.post(url, content_type="application/json", **bearer)
    gateway = client.post(
        "/v1/chat/completions", json.dumps({}), content_type="application/json", **bearer
    )

    assert api.status_code == 201, api.content
    assert gateway.status_code not in (401, 403) and gateway.status_code < 500, gateway.content
