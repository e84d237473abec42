"""Encryption of secrets at rest (provider API keys) with MultiFernet.

``FUSION_ENCRYPTION_KEYS`` lists Fernet keys, newest first: the first encrypts, every one
decrypts, so a new key can be put in front and the data re-encrypted (``rotate``) while the
old key still opens what has not been rotated yet.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from workbench.lib.env import fernet_keys_error

__all__ = ["DecryptionError", "decrypt", "encrypt", "rotate"]


class DecryptionError(Exception):
    """No configured key opens the token (a key was removed before its data was rotated)."""


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    # Settings already refused bad keys at start; this guards values set later (tests).
    # The message names the entry's position, never the key itself.
    if error := fernet_keys_error("FUSION_ENCRYPTION_KEYS", keys):
        raise ImproperlyConfigured(error)
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _fernet() -> MultiFernet:
    # Keyed by the current setting so tests that override it get a matching instance.
    return _multifernet(tuple(settings.FUSION_ENCRYPTION_KEYS))


@sensitive_variables("plaintext")
def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any of FUSION_ENCRYPTION_KEYS"
        ) from None


def rotate(token: str) -> str:
    """The same secret, encrypted with the newest key."""
    try:
        return _fernet().rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            "a stored secret cannot be decrypted with any of FUSION_ENCRYPTION_KEYS"
        ) from None


def newest_key_encrypted(token: str) -> bool:
    """Whether ``token`` opens with the first (newest) key."""
    try:
        Fernet(settings.FUSION_ENCRYPTION_KEYS[0].encode()).decrypt(token.encode())
    except InvalidToken:
        return False
    return True
