"""End-to-end fixtures: the browser ones (``browser``, ``new_page``, ``screenshot``) come from
the ``tests.browser`` plugin; here each test gets fast hashing and its own cache namespace."""

from __future__ import annotations

import copy
import uuid

import pytest
from pytest_django.fixtures import Settings as SettingsWrapper


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings: SettingsWrapper) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"e2e-{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches
