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

__all__ = ["DecryptionError", "decrypt", "encrypt", "rotate"]


class DecryptionError(Exception):
    """No configured key opens the token (a key was removed before its data was rotated)."""


@lru_cache(maxsize=4)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("FUSION_ENCRYPTION_KEYS is empty")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError:
        # Never echo the key itself: the message only says which position is wrong.
        bad = next(i for i, key in enumerate(keys) if not _is_fernet_key(key))
        raise ImproperlyConfigured(
            f"FUSION_ENCRYPTION_KEYS entry #{bad + 1} is not a Fernet key "
            "(32 url-safe base64-encoded bytes)"
        ) from None


def _is_fernet_key(key: str) -> bool:
    try:
        Fernet(key.encode())
    except ValueError:
        return False
    return True


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
