"""/api/v1/ credentials: write-only keys, the same 404/403 rules as the pages, one error shape."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from fusion.testing.upstream import Upstream
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential

from .conftest import KEY_A, KEY_B

pytestmark = pytest.mark.django_db


def _base(workspace: Workspace) -> str:
    return f"/api/v1/workspaces/{workspace.slug}/credentials"


def _post(client: Client, url: str, body: Any, method: str = "post") -> Any:
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")


def test_it_lists_credentials_with_key_hints_only(
    workspace: Workspace,
    alice_client: Client,
    bob_client: Client,
    charlie_client: Client,
    shared_credential: Credential,
) -> None:
    response = alice_client.get(_base(workspace))
    assert response.status_code == 200
    [item] = response.json()
    assert item["label"] == "Team upstream"
    assert [k["last_four"] for k in item["key_hints"]] == ["A1B2", "C3D4"]
    assert item["can_manage"] is True
    assert "LEAKCANARY" not in response.content.decode()
    assert bob_client.get(_base(workspace)).json()[0]["can_manage"] is False
    assert charlie_client.get(_base(workspace)).status_code == 404
    assert Client().get(_base(workspace)).status_code == 401


def test_it_creates_a_credential_without_echoing_its_keys(
    workspace: Workspace, bob: User, bob_client: Client
) -> None:
    response = _post(
        bob_client,
        _base(workspace),
        {"provider": "openai", "label": "Bob's", "keys": [KEY_A, KEY_B]},
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["scope"] == "personal" and body["owner"] == "bob"
    assert [k["last_four"] for k in body["key_hints"]] == ["A1B2", "C3D4"]
    assert "LEAKCANARY" not in response.content.decode()


def test_it_forbids_bob_a_workspace_credential_and_vera_any(
    workspace: Workspace, bob_client: Client, vera_client: Client
) -> None:
    body = {"provider": "simulated", "label": "Shared", "scope": "workspace"}
    assert _post(bob_client, _base(workspace), body).status_code == 403
    response = _post(vera_client, _base(workspace), {**body, "scope": "personal"})
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert not Credential.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"provider": "openai", "label": "x", "keys": ["sk-LEAKCANARY x"]}, 400, "keys"),
        ({"provider": "openai", "label": "x", "keys": [1234567890123]}, 422, "keys.0"),
        ({"provider": "openai", "label": "x", "keys": "sk-LEAKCANARY-notalist"}, 422, "keys"),
        ({"provider": "nope", "label": "x"}, 422, "provider"),
        (
            {"provider": "openai_compatible", "label": "x", "base_url": "http://169.254.169.254"},
            400,
            "base_url",
        ),
    ],
)
def test_it_reports_field_errors_without_echoing_input(
    workspace: Workspace, alice_client: Client, body: dict[str, Any], status: int, field: str
) -> None:
    response = _post(alice_client, _base(workspace), body)
    assert response.status_code == status
    payload = response.json()
    assert set(payload) == {"detail", "code", "errors"}
    assert field in [e["field"] for e in payload["errors"]]
    assert "LEAKCANARY" not in response.content.decode()


def test_it_updates_and_deletes_with_the_same_rules_as_the_pages(
    workspace: Workspace,
    alice_client: Client,
    bob_client: Client,
    charlie_client: Client,
    shared_credential: Credential,
) -> None:
    url = f"{_base(workspace)}/{shared_credential.pk}"
    assert _post(bob_client, url, {"label": "Bob's now"}, "patch").status_code == 403
    assert _post(charlie_client, url, {"label": "x"}, "patch").status_code == 404
    assert charlie_client.get(url).status_code == 404
    first = shared_credential.keys.first()
    assert first is not None
    response = _post(
        alice_client,
        url,
        {"label": "Renamed", "remove_key_ids": [first.pk], "add_keys": ["sk-new-key-0000-9Z9Z"]},
        "patch",
    )
    assert response.status_code == 200
    assert [k["last_four"] for k in response.json()["key_hints"]] == ["C3D4", "9Z9Z"]
    assert bob_client.delete(url).status_code == 403
    assert alice_client.delete(url).status_code == 204
    assert alice_client.get(url).status_code == 404


def test_it_tests_a_credential_and_lists_its_priced_catalog(
    workspace: Workspace, bob_client: Client, shared_credential: Credential, upstream: Upstream
) -> None:
    url = f"{_base(workspace)}/{shared_credential.pk}"
    result = bob_client.post(f"{url}/test").json()
    assert result["ok"] is True
    assert [k["key"] for k in result["keys"]] == ["…A1B2", "…C3D4"]
    assert result["models"] == ["up-large", "up-small"]
    added = _post(bob_client, f"{url}/models", {"model": "gpt-4o"})
    assert added.status_code == 201
    catalog = {e["model"]: e for e in bob_client.get(f"{url}/models").json()}
    assert catalog["up-small"]["unpriced"] is True
    assert catalog["gpt-4o"]["price"] == {
        "input_per_million": "2.5000",
        "output_per_million": "10.0000",
    }
    assert catalog["gpt-4o"]["source"] == "manual"


def test_it_checks_csrf_for_session_callers(workspace: Workspace, alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = _post(client, _base(workspace), {"provider": "simulated", "label": "x"})
    assert response.status_code == 403
    assert not Credential.objects.exists()


def test_it_serves_the_openapi_schema_and_docs_without_a_cdn(client: Client) -> None:
    schema = client.get("/api/v1/openapi.json").json()
    assert schema["info"]["title"] == "Fusion Workbench API"
    assert "/api/v1/workspaces/{ws}/credentials" in schema["paths"]
    assert "/api/v1/workspaces/{ws}/pools/{slug}" in schema["paths"]
    keys = schema["components"]["schemas"]["CredentialIn"]["properties"]["keys"]
    assert keys["items"]["writeOnly"] is True
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.content.decode()
