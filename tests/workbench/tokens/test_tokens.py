"""API tokens: the page (alice, bob, vera, charlie), hashing, revoking, the command, and the
REST API accepting them for their own workspace only."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from workbench.accounts.services import workspace_create
from workbench.tokens.models import ApiToken
from workbench.tokens.services import token_authenticate, token_create

pytestmark = pytest.mark.django_db


def url(workspace, suffix: str = "") -> str:
    return f"/w/{workspace.slug}/tokens/{suffix}"


def test_it_shows_a_new_token_once_and_stores_only_its_hash(alice_client, alice, workspace) -> None:
    response = alice_client.post(url(workspace), {"name": "eval script"})

    assert response.status_code == 200
    raw = response.context["created"]
    assert raw.startswith("fw_") and len(raw) > 40 and raw in response.content.decode()
    token = ApiToken.objects.get()
    assert token.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in json.dumps(list(ApiToken.objects.values()), default=str)
    page = alice_client.get(url(workspace)).content.decode()
    assert raw not in page and token.prefix in page and "eval script" in page


def test_it_lets_every_member_have_tokens_and_keeps_outsiders_out(
    bob_client, vera_client, charlie_client, workspace
) -> None:
    assert bob_client.post(url(workspace), {"name": "bob's"}).status_code == 200
    assert vera_client.get(url(workspace)).status_code == 200
    assert charlie_client.get(url(workspace)).status_code == 404
    assert charlie_client.post(url(workspace), {"name": "x"}).status_code == 404
    assert Client().get(url(workspace)).status_code == 302  # to the log-in page


def test_it_refuses_a_nameless_token(alice_client, workspace) -> None:
    response = alice_client.post(url(workspace), {"name": "  "})
    assert response.status_code == 400 and not ApiToken.objects.exists()


def test_it_shows_members_only_their_own_tokens_and_admins_all(
    alice, bob, alice_client, bob_client, workspace
) -> None:
    token_create(workspace=workspace, user=alice, name="alice-token")
    token_create(workspace=workspace, user=bob, name="bob-token")
    assert "alice-token" not in bob_client.get(url(workspace)).content.decode()
    page = alice_client.get(url(workspace)).content.decode()
    assert "alice-token" in page and "bob-token" in page


def test_it_revokes_for_the_owner_and_admins_only(
    alice, bob, alice_client, bob_client, charlie_client, workspace
) -> None:
    alice_token, alice_raw = token_create(workspace=workspace, user=alice, name="a")
    bob_token, bob_raw = token_create(workspace=workspace, user=bob, name="b")
    assert bob_client.post(url(workspace, f"{alice_token.pk}/revoke/")).status_code == 404
    assert charlie_client.post(url(workspace, f"{bob_token.pk}/revoke/")).status_code == 404
    assert token_authenticate(alice_raw) is not None

    assert alice_client.post(url(workspace, f"{bob_token.pk}/revoke/")).status_code == 302
    assert bob_client.post(url(workspace, f"{bob_token.pk}/revoke/")).status_code == 302
    assert token_authenticate(bob_raw) is None
    assert token_authenticate(alice_raw) is not None


def test_it_stops_a_token_whose_user_left_the_workspace(bob, workspace) -> None:
    _, raw = token_create(workspace=workspace, user=bob, name="b")
    bob.memberships.filter(workspace=workspace).delete()
    assert token_authenticate(raw) is None


def test_it_refuses_lookalike_tokens(alice, workspace) -> None:
    _, raw = token_create(workspace=workspace, user=alice, name="a")
    assert token_authenticate(raw[:-1] + ("A" if raw[-1] != "A" else "B")) is None
    assert token_authenticate("") is None
    assert token_authenticate(raw[:11]) is None


def test_it_prints_a_token_from_the_command(alice, workspace) -> None:
    out = StringIO()
    call_command("create_api_token", user="alice", workspace=workspace.slug, name="ci", stdout=out)
    raw = out.getvalue().strip()
    found = token_authenticate(raw)
    assert found is not None and found.name == "ci" and found.user == alice


def test_it_authenticates_the_rest_api_for_its_own_workspace_only(alice, workspace) -> None:
    other = workspace_create(owner=alice, name="Other")
    _, raw = token_create(workspace=workspace, user=alice, name="a")
    client = Client()
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}

    assert client.get(f"/api/v1/workspaces/{workspace.slug}/pools", **auth).status_code == 200
    assert client.get(f"/api/v1/workspaces/{other.slug}/pools", **auth).status_code == 404
    assert client.get(f"/api/v1/workspaces/{workspace.slug}/pools").status_code == 401
    bad = {"HTTP_AUTHORIZATION": "Bearer fw_nope-nope-nope-nope"}
    assert client.get(f"/api/v1/workspaces/{workspace.slug}/pools", **bad).status_code == 401


def test_it_needs_no_csrf_token_with_a_bearer_token(alice, workspace) -> None:
    _, raw = token_create(workspace=workspace, user=alice, name="a")
    client = Client(enforce_csrf_checks=True)
    response = client.post(
        f"/api/v1/workspaces/{workspace.slug}/runs",
        data=json.dumps({"pool": "missing", "prompt": "hi"}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code == 400 and response.json()["code"] == "unknown_pool"


def test_it_notes_when_a_token_was_last_used(alice, alice_client, workspace) -> None:
    token, raw = token_create(workspace=workspace, user=alice, name="a")
    assert token.last_used_at is None
    assert "never" in alice_client.get(url(workspace)).content.decode()

    Client().get("/v1/models", HTTP_AUTHORIZATION=f"Bearer {raw}")  # any use counts

    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None and timezone.now() - first < timedelta(seconds=30)
    token_authenticate(raw)  # again within a minute: no write for every request
    token.refresh_from_db()
    assert token.last_used_at == first
    earlier = timezone.now() - timedelta(minutes=5)
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=earlier)
    Client().get(f"/api/v1/workspaces/{workspace.slug}/pools", HTTP_AUTHORIZATION=f"Bearer {raw}")
    token.refresh_from_db()
    assert token.last_used_at > earlier + timedelta(minutes=4)
    page = alice_client.get(url(workspace)).content.decode()
    cell = page.split(f'data-testid="last-used-{token.pk}"')[1].split("</td>")[0]
    assert "never" not in cell and ("ago" in cell or "now" in cell)
