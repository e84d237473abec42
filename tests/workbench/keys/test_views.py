"""The keys pages for alice (owner), bob (member), vera (viewer) and charlie (outsider)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from fusion.testing.upstream import Upstream
from workbench.accounts.models import User, Workspace
from workbench.keys.models import CatalogModel, Credential, Scope

from .conftest import KEY_A, KEY_B

pytestmark = pytest.mark.django_db


def _url(name: str, workspace: Workspace, **kwargs: object) -> str:
    return reverse(f"keys:{name}", kwargs={"ws": workspace.slug, **kwargs})


def test_it_shows_the_list_to_members_and_hides_it_from_outsiders(
    workspace: Workspace,
    alice_client: Client,
    bob_client: Client,
    vera_client: Client,
    charlie_client: Client,
    shared_credential: Credential,
) -> None:
    url = _url("index", workspace)
    for client in (alice_client, bob_client, vera_client):
        response = client.get(url)
        assert response.status_code == 200
        assert "Team upstream" in response.content.decode()
        assert "…A1B2" in response.content.decode()
    assert charlie_client.get(url).status_code == 404
    assert Client().get(url).status_code == 302  # to the log-in page


def test_it_adds_a_credential_and_never_shows_the_key_again(
    workspace: Workspace, bob: User, bob_client: Client
) -> None:
    response = bob_client.post(
        _url("index", workspace),
        {"provider": "openai", "label": "Bob's OpenAI", "scope": "personal", "keys": KEY_A},
    )
    credential = Credential.objects.get(label="Bob's OpenAI")
    assert response.status_code == 302
    assert response["Location"] == _url("detail", workspace, pk=credential.pk)
    assert credential.owner == bob and credential.scope == Scope.PERSONAL
    page = bob_client.get(response["Location"]).content.decode()
    assert "…A1B2" in page
    assert "LEAKCANARY" not in page


def test_it_shows_errors_without_putting_the_submitted_keys_back_in_the_page(
    workspace: Workspace, alice_client: Client
) -> None:
    response = alice_client.post(
        _url("index", workspace),
        {
            "provider": "openai_compatible",
            "label": "Local",
            "scope": "workspace",
            "base_url": "http://169.254.169.254/v1",
            "keys": f"{KEY_A}\n{KEY_B}",
        },
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "link-local" in page
    assert "LEAKCANARY" not in page
    assert not Credential.objects.exists()


def test_it_offers_bob_only_personal_credentials(workspace: Workspace, bob_client: Client) -> None:
    response = bob_client.post(
        _url("index", workspace),
        {"provider": "simulated", "label": "Sneaky", "scope": "workspace"},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Credential.objects.exists()


def test_it_lets_viewers_read_but_not_add(workspace: Workspace, vera_client: Client) -> None:
    page = vera_client.get(_url("index", workspace)).content.decode()
    assert "Add a credential" not in page
    response = vera_client.post(
        _url("index", workspace), {"provider": "simulated", "label": "x", "scope": "personal"}
    )
    assert response.status_code == 403


def test_it_shows_bob_a_workspace_credential_without_letting_him_change_it(
    workspace: Workspace,
    bob_client: Client,
    charlie_client: Client,
    shared_credential: Credential,
) -> None:
    url = _url("detail", workspace, pk=shared_credential.pk)
    page = bob_client.get(url).content.decode()
    assert "Team upstream" in page
    assert "Delete credential" not in page
    assert bob_client.post(url, {"label": "bob's now"}).status_code == 403
    delete = _url("delete", workspace, pk=shared_credential.pk)
    assert bob_client.post(delete).status_code == 403
    assert charlie_client.get(url).status_code == 404
    assert charlie_client.post(delete).status_code == 404
    assert Credential.objects.filter(pk=shared_credential.pk, label="Team upstream").exists()


def test_it_hides_a_personal_credential_from_everyone_but_its_owner(
    workspace: Workspace,
    bob: User,
    alice_client: Client,
    bob_client: Client,
    make_credential: Callable[..., Credential],
) -> None:
    bobs = make_credential(bob, label="Bob's own")
    assert bob_client.get(_url("detail", workspace, pk=bobs.pk)).status_code == 200
    assert alice_client.get(_url("detail", workspace, pk=bobs.pk)).status_code == 404
    assert "Bob's own" not in alice_client.get(_url("index", workspace)).content.decode()
    assert alice_client.post(_url("test", workspace, pk=bobs.pk)).status_code == 404


def test_it_edits_label_and_keys(
    workspace: Workspace, alice_client: Client, shared_credential: Credential
) -> None:
    first = shared_credential.keys.first()
    assert first is not None
    response = alice_client.post(
        _url("detail", workspace, pk=shared_credential.pk),
        {
            "label": "Team (renamed)",
            "base_url": shared_credential.base_url,
            "remove_keys": [first.pk],
            "add_keys": "sk-LEAKCANARY-cccccccccccccccc-E5F6",
        },
    )
    assert response.status_code == 302
    shared_credential.refresh_from_db()
    assert shared_credential.label == "Team (renamed)"
    assert [k.hint for k in shared_credential.keys.all()] == ["C3D4", "E5F6"]


def test_it_tests_a_credential_with_htmx(
    workspace: Workspace, bob_client: Client, shared_credential: Credential, upstream: Upstream
) -> None:
    response = bob_client.post(
        _url("test", workspace, pk=shared_credential.pk), headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert "OK" in page and "2 models" in page
    assert "<html" not in page  # a fragment, not a page


def test_it_shows_the_providers_error_when_a_key_is_refused(
    workspace: Workspace, alice_client: Client, shared_credential: Credential, upstream: Upstream
) -> None:
    upstream.valid_keys = set()
    response = alice_client.post(
        _url("test", workspace, pk=shared_credential.pk), headers={"HX-Request": "true"}
    )
    page = response.content.decode()
    assert "Failed" in page
    assert "authentication failed" in page
    assert "LEAKCANARY" not in page


def test_it_refreshes_the_catalog_and_adds_and_removes_models_by_hand(
    workspace: Workspace, bob_client: Client, shared_credential: Credential, upstream: Upstream
) -> None:
    htmx = {"HX-Request": "true"}
    page = bob_client.post(
        _url("refresh", workspace, pk=shared_credential.pk), headers=htmx
    ).content.decode()
    assert "up-large" in page and "unpriced" in page
    page = bob_client.post(
        _url("model_add", workspace, pk=shared_credential.pk),
        {"model": "gpt-4o-mini"},
        headers=htmx,
    ).content.decode()
    assert "gpt-4o-mini" in page and "$0.15" in page  # priced from the built-in table
    bob_client.post(
        _url("model_remove", workspace, pk=shared_credential.pk),
        {"model": "gpt-4o-mini"},
        headers=htmx,
    )
    assert not CatalogModel.objects.filter(model_id="gpt-4o-mini").exists()


def test_it_lets_alice_delete_a_workspace_credential(
    workspace: Workspace, alice_client: Client, shared_credential: Credential
) -> None:
    response = alice_client.post(_url("delete", workspace, pk=shared_credential.pk))
    assert response.status_code == 302
    assert not Credential.objects.exists()


def test_it_needs_post_for_actions(
    workspace: Workspace, alice_client: Client, shared_credential: Credential
) -> None:
    for name in ("test", "delete", "refresh", "model_add", "model_remove"):
        assert alice_client.get(_url(name, workspace, pk=shared_credential.pk)).status_code == 405


@pytest.mark.parametrize(
    ("name", "method", "bob_status", "vera_status"),
    [
        ("index", "get", 200, 200),
        ("detail", "get", 200, 200),
        ("detail", "post", 403, 403),  # the edit form
        ("test", "post", 200, 403),
        ("refresh", "post", 200, 403),
        ("model_add", "post", 200, 403),
        ("model_remove", "post", 200, 403),
        ("delete", "post", 403, 403),
    ],
)
def test_it_applies_the_same_rules_on_every_route(
    workspace: Workspace,
    bob_client: Client,
    vera_client: Client,
    charlie_client: Client,
    shared_credential: Credential,
    upstream: Upstream,
    name: str,
    method: str,
    bob_status: int,
    vera_status: int,
) -> None:
    kwargs = {} if name == "index" else {"pk": shared_credential.pk}
    url = _url(name, workspace, **kwargs)
    data = {"model": "extra-model", "label": "x"}
    htmx = {"HX-Request": "true"}
    assert getattr(charlie_client, method)(url, data, headers=htmx).status_code == 404
    assert getattr(vera_client, method)(url, data, headers=htmx).status_code == vera_status
    assert getattr(bob_client, method)(url, data, headers=htmx).status_code == bob_status
    assert Credential.objects.filter(label="Team upstream").exists()
