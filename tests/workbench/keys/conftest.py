"""Credentials for the keys tests, and the loopback upstream that plays the providers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fusion.testing.upstream import Upstream
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import credential_create

# Distinctive, so a scan for them cannot match anything else.
KEY_A = "sk-LEAKCANARY-aaaaaaaaaaaaaaaa-A1B2"
KEY_B = "sk-LEAKCANARY-bbbbbbbbbbbbbbbb-C3D4"


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    """The loopback provider, served from a thread so sync tests and views can call it."""
    up = Upstream(models=("up-small", "up-large"))
    up.start_in_thread()
    yield up
    up.stop_thread()


@pytest.fixture
def make_credential(workspace: Workspace) -> Callable[..., Credential]:
    def make(user: User, **kwargs: Any) -> Credential:
        kwargs.setdefault("provider", "simulated")
        kwargs.setdefault("label", f"{kwargs['provider']} {Credential.objects.count() + 1}")
        kwargs.setdefault("scope", Scope.PERSONAL)
        kwargs.setdefault("workspace", workspace)
        return credential_create(user=user, **kwargs)

    return make


@pytest.fixture
def shared_credential(
    alice: User, make_credential: Callable[..., Credential], upstream: Upstream
) -> Credential:
    """A workspace credential with a pool of two keys, pointing at the upstream."""
    return make_credential(
        alice,
        provider="openai_compatible",
        label="Team upstream",
        scope=Scope.WORKSPACE,
        base_url=f"{upstream.url}/v1",
        keys=[KEY_A, KEY_B],
    )
