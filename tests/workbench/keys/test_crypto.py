"""Keys at rest: Fernet with the first of FUSION_ENCRYPTION_KEYS, rotation to a new key."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from workbench.accounts.models import User
from workbench.keys.models import Credential, CredentialKey, Scope
from workbench.keys.services import credential_endpoint
from workbench.lib import crypto

from .conftest import KEY_A, KEY_B

pytestmark = pytest.mark.django_db


def test_it_round_trips_and_never_stores_clear_text() -> None:
    token = crypto.encrypt(KEY_A)
    assert KEY_A not in token
    assert crypto.decrypt(token) == KEY_A


def test_it_refuses_a_token_that_no_configured_key_opens(settings: SettingsWrapper) -> None:
    token = crypto.encrypt(KEY_A)
    settings.FUSION_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.DecryptionError) as caught:
        crypto.decrypt(token)
    assert KEY_A not in str(caught.value)


def test_it_rotates_every_key_to_the_newest_encryption_key(
    settings: SettingsWrapper, alice: User, make_credential: Callable[..., Credential]
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FUSION_ENCRYPTION_KEYS = [old]
    credential = make_credential(
        alice, provider="openai", scope=Scope.WORKSPACE, keys=[KEY_A, KEY_B]
    )
    stored = list(CredentialKey.objects.values_list("ciphertext", flat=True))
    assert all(crypto.newest_key_encrypted(t) for t in stored)

    # The new key goes first; the old one still decrypts until the rotation ran.
    settings.FUSION_ENCRYPTION_KEYS = [new, old]
    assert not any(crypto.newest_key_encrypted(t) for t in stored)
    out = io.StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 2 keys" in out.getvalue()
    rotated = list(CredentialKey.objects.values_list("ciphertext", flat=True))
    assert rotated != stored
    assert all(crypto.newest_key_encrypted(t) for t in rotated)

    # The old key can now be dropped: everything still opens with the new one alone.
    settings.FUSION_ENCRYPTION_KEYS = [new]
    endpoint = credential_endpoint(Credential.objects.get(pk=credential.pk), client=None)
    assert [k.secret for k in endpoint.keys] == [KEY_A, KEY_B]


def test_it_rotation_stops_without_changes_when_a_key_is_missing(
    settings: SettingsWrapper, alice: User, make_credential: Callable[..., Credential]
) -> None:
    from django.core.management.base import CommandError

    make_credential(alice, provider="openai", keys=[KEY_A])
    before = list(CredentialKey.objects.values_list("ciphertext", flat=True))
    settings.FUSION_ENCRYPTION_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(CommandError):
        call_command("rotate_encryption_keys")
    assert list(CredentialKey.objects.values_list("ciphertext", flat=True)) == before


def test_it_names_a_malformed_key_set_after_start_without_echoing_it(
    settings: SettingsWrapper,
) -> None:
    """Settings refuse a malformed key at start (test_settings.py); a value set later, as
    tests do, is refused at the first use with the same words."""
    settings.FUSION_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), "short-and-wrong"]
    with pytest.raises(ImproperlyConfigured) as caught:
        crypto.encrypt(KEY_A)
    assert "FUSION_ENCRYPTION_KEYS entry #2 is not a Fernet key" in str(caught.value)
    assert "short-and-wrong" not in str(caught.value)
    settings.FUSION_ENCRYPTION_KEYS = []
    with pytest.raises(ImproperlyConfigured, match="FUSION_ENCRYPTION_KEYS is empty"):
        crypto.encrypt(KEY_A)
