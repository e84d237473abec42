"""Credential services: validation, the key pool, permissions, Test, catalog, worker endpoints."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404

from fusion.testing.scripts import Script
from fusion.testing.upstream import MODELS_KEY, Upstream
from workbench.accounts.models import User, Workspace
from workbench.keys import selectors, services
from workbench.keys.models import CatalogModel, Credential, CredentialKey, ModelSource, Scope
from workbench.lib.errors import ServiceError

from .conftest import KEY_A, KEY_B

pytestmark = pytest.mark.django_db


def test_it_encrypts_keys_and_keeps_only_the_last_four_in_clear(
    alice: User, make_credential: Callable[..., Credential]
) -> None:
    credential = make_credential(alice, provider="openai", keys=[f"  {KEY_A}  ", "", KEY_B, KEY_A])
    rows = list(CredentialKey.objects.filter(credential=credential))
    assert [r.hint for r in rows] == ["A1B2", "C3D4"]  # stripped, blank and duplicate dropped
    for row in rows:
        assert "LEAKCANARY" not in row.ciphertext
    assert [k.display for k in rows] == ["…A1B2", "…C3D4"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"provider": "openai", "keys": []}, "keys"),
        ({"provider": "openai", "keys": ["short"]}, "keys"),
        ({"provider": "openai", "keys": ["sk-has a space-1234"]}, "keys"),
        ({"provider": "openai_compatible", "base_url": ""}, "base_url"),
        ({"provider": "simulated", "base_url": "https://8.8.8.8/v1"}, "base_url"),
        ({"provider": "nonsense"}, "provider"),
        ({"provider": "simulated", "label": "  "}, "label"),
        ({"provider": "simulated", "scope": "everyone"}, "scope"),
    ],
)
def test_it_rejects_an_invalid_credential_naming_the_field(
    alice: User, make_credential: Callable[..., Credential], kwargs: dict, field: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        make_credential(alice, **kwargs)
    assert caught.value.field == field
    assert Credential.objects.count() == 0


def test_it_never_quotes_a_rejected_key_in_the_error(
    alice: User, make_credential: Callable[..., Credential]
) -> None:
    bad = "sk-LEAKCANARY with spaces"
    with pytest.raises(ServiceError) as caught:
        make_credential(alice, provider="openai", keys=[KEY_A, bad])
    assert "LEAKCANARY" not in caught.value.message
    assert "#2" in caught.value.message


def test_it_refuses_a_duplicate_label_in_the_same_scope(
    alice: User, bob: User, make_credential: Callable[..., Credential]
) -> None:
    make_credential(alice, label="OpenAI", scope=Scope.WORKSPACE)
    with pytest.raises(ServiceError, match="already"):
        make_credential(alice, label="openai", scope=Scope.WORKSPACE)
    # Personal labels are per person.
    make_credential(alice, label="Mine")
    make_credential(bob, label="Mine")


def test_it_lets_only_admins_add_workspace_credentials(
    alice: User, bob: User, vera: User, make_credential: Callable[..., Credential]
) -> None:
    with pytest.raises(PermissionDenied):
        make_credential(bob, scope=Scope.WORKSPACE)
    with pytest.raises(PermissionDenied):
        make_credential(vera)  # viewers add nothing
    make_credential(bob)  # a personal one is fine


def test_it_refuses_outsiders(charlie: User, make_credential: Callable[..., Credential]) -> None:
    with pytest.raises(Http404):
        make_credential(charlie)


def test_it_shows_members_workspace_credentials_and_only_their_own_personal_ones(
    alice: User,
    bob: User,
    charlie: User,
    workspace: Workspace,
    make_credential: Callable[..., Credential],
) -> None:
    shared = make_credential(alice, scope=Scope.WORKSPACE, label="Shared")
    alices = make_credential(alice, label="Alice's")
    bobs = make_credential(bob, label="Bob's")
    assert set(selectors.credentials_usable_by(alice, workspace)) == {shared, alices}
    assert set(selectors.credentials_usable_by(bob, workspace)) == {shared, bobs}
    assert list(selectors.credentials_usable_by(charlie, workspace)) == []
    with pytest.raises(Http404):
        selectors.credential_get(alice, workspace, bobs.pk)


def test_it_updates_the_key_pool(alice: User, make_credential: Callable[..., Credential]) -> None:
    credential = make_credential(alice, provider="openai", keys=[KEY_A])
    first = credential.keys.get()
    services.credential_update(
        credential=credential, user=alice, label="Renamed", add_keys=[KEY_B, KEY_A]
    )
    assert [k.hint for k in credential.keys.all()] == ["A1B2", "C3D4"]  # no duplicate
    services.credential_update(credential=credential, user=alice, remove_key_ids=[first.pk])
    assert [k.hint for k in credential.keys.all()] == ["C3D4"]
    with pytest.raises(ServiceError, match="at least one"):
        services.credential_update(
            credential=credential, user=alice, remove_key_ids=[credential.keys.get().pk]
        )
    services.credential_update(credential=credential, user=alice, replace_keys=[KEY_A])
    credential.refresh_from_db()
    assert credential.label == "Renamed"
    assert [k.hint for k in credential.keys.all()] == ["A1B2"]


def test_it_lets_only_admins_change_workspace_credentials_and_owners_their_own(
    alice: User, bob: User, make_credential: Callable[..., Credential]
) -> None:
    shared = make_credential(alice, scope=Scope.WORKSPACE)
    alices = make_credential(alice)
    with pytest.raises(PermissionDenied):
        services.credential_update(credential=shared, user=bob, label="mine now")
    with pytest.raises(PermissionDenied):
        services.credential_delete(credential=shared, user=bob)
    with pytest.raises(Http404):  # someone else's personal credential does not exist for him
        services.credential_delete(credential=alices, user=bob)
    services.credential_delete(credential=shared, user=alice)
    assert not Credential.objects.filter(pk=shared.pk).exists()


def test_it_builds_the_worker_endpoint_with_decrypted_keys_and_safe_labels(
    shared_credential: Credential,
) -> None:
    endpoint = services.credential_endpoint(shared_credential, client=None)
    assert [k.label for k in endpoint.keys] == ["…A1B2", "…C3D4"]
    assert [k.secret for k in endpoint.keys] == [KEY_A, KEY_B]
    assert KEY_A not in repr(endpoint.keys)
    assert endpoint.provider.name == "Team upstream"


def test_it_tests_every_key_and_fills_the_catalog(
    alice: User, shared_credential: Credential, upstream: Upstream
) -> None:
    result = services.credential_check(credential=shared_credential, user=alice)
    assert result.ok
    assert result.message == "OK: 2 models available."
    assert [p.key_label for p in result.probes] == ["…A1B2", "…C3D4"]
    assert selectors.catalog_models(shared_credential) == ["up-large", "up-small"]
    keys_sent = [r.headers["authorization"] for r in upstream.requests]
    assert sorted(keys_sent) == sorted([f"Bearer {KEY_A}", f"Bearer {KEY_B}"])
    shared_credential.refresh_from_db()
    assert shared_credential.check_ok is True


def test_it_reports_the_providers_error_per_key_without_the_key(
    alice: User, make_credential: Callable[..., Credential], upstream: Upstream
) -> None:
    upstream.valid_keys = {KEY_B}
    credential = make_credential(
        alice, provider="openai_compatible", base_url=f"{upstream.url}/v1", keys=[KEY_A, KEY_B]
    )
    result = services.credential_check(credential=credential, user=alice)
    assert not result.ok
    assert [p.ok for p in result.probes] == [False, True]
    assert "authentication failed" in (result.probes[0].error or "")
    assert result.message.startswith("…A1B2: ")
    # One key works, so the catalog is still refreshed.
    assert selectors.catalog_models(credential) == ["up-large", "up-small"]


def test_it_redacts_a_key_that_the_provider_echoes_in_its_error(
    alice: User, make_credential: Callable[..., Credential], upstream: Upstream
) -> None:
    upstream.script(MODELS_KEY, Script(status=403, echo_key=True, error_message="bad key"))
    credential = make_credential(
        alice, provider="openai_compatible", base_url=f"{upstream.url}/v1", keys=[KEY_A]
    )
    result = services.credential_check(credential=credential, user=alice)
    assert not result.ok
    assert "bad key" in result.message
    assert "LEAKCANARY" not in result.message
    credential.refresh_from_db()
    assert "LEAKCANARY" not in credential.check_message


@pytest.mark.parametrize(
    ("provider", "path"), [("anthropic", "/v1/models"), ("gemini", "/v1beta/models")]
)
def test_it_lists_models_in_each_providers_format(
    alice: User,
    make_credential: Callable[..., Credential],
    upstream: Upstream,
    provider: str,
    path: str,
) -> None:
    credential = make_credential(alice, provider=provider, base_url=upstream.url, keys=[KEY_A])
    result = services.credential_check(credential=credential, user=alice)
    assert result.ok, result.message
    assert upstream.requests[0].path == path
    # The key travels in a header, never in the URL.
    assert "LEAKCANARY" not in upstream.requests[0].url
    assert set(selectors.catalog_models(credential)) >= {"up-small", "up-large"}


def test_it_keeps_manual_models_when_the_catalog_is_refreshed(
    alice: User, shared_credential: Credential, upstream: Upstream
) -> None:
    services.catalog_add_model(credential=shared_credential, user=alice, model_id="my-finetune")
    CatalogModel.objects.create(
        credential=shared_credential, model_id="gone-model", source=ModelSource.LISTED
    )
    services.credential_check(credential=shared_credential, user=alice)
    assert selectors.catalog_models(shared_credential) == ["my-finetune", "up-large", "up-small"]
    with pytest.raises(ServiceError):
        services.catalog_add_model(credential=shared_credential, user=alice, model_id="a b")


def test_it_lets_members_but_not_viewers_test_workspace_credentials(
    bob: User, vera: User, shared_credential: Credential
) -> None:
    assert services.credential_check(credential=shared_credential, user=bob).ok
    with pytest.raises(PermissionDenied):
        services.credential_check(credential=shared_credential, user=vera)


def test_it_fills_a_simulated_credentials_catalog_at_once(
    alice: User, make_credential: Callable[..., Credential]
) -> None:
    credential = make_credential(alice, provider="simulated")
    assert "sim-fast" in selectors.catalog_models(credential)
    assert credential.keys.count() == 0
