"""Pools need credentials: a shared simulated one (fully priced) and helpers to build input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import catalog_add_model, credential_create
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.models import Pool
from workbench.pools.services import pool_create


@pytest.fixture
def sim(alice: User, workspace: Workspace) -> Credential:
    """The workspace's simulated credential (its catalog: sim-fast, sim-balanced …)."""
    return credential_create(
        workspace=workspace, user=alice, provider="simulated", label="Sim", scope=Scope.WORKSPACE
    )


@pytest.fixture
def local(alice: User, workspace: Workspace) -> Credential:
    """A keyless OpenAI-compatible server whose models have no price."""
    credential = credential_create(
        workspace=workspace,
        user=alice,
        provider="openai_compatible",
        label="Local vLLM",
        scope=Scope.WORKSPACE,
        base_url="http://127.0.0.1:9/v1",
    )
    catalog_add_model(credential=credential, user=alice, model_id="llama-local")
    return credential


def pool_input(credential: Credential, **overrides: Any) -> PoolInput:
    data: dict[str, Any] = {
        "name": "Trio",
        "mode": "best_of",
        "members": [
            MemberInput(credential_id=credential.pk, model=m)
            for m in ("sim-fast", "sim-balanced", "sim-slow")
        ],
        "judge": JudgeInput(credential_id=credential.pk, model="sim-judge"),
    }
    data.update(overrides)
    return PoolInput(**data)


@pytest.fixture
def make_pool(alice: User, workspace: Workspace, sim: Credential) -> Callable[..., Pool]:
    def make(user: User | None = None, **overrides: Any) -> Pool:
        return pool_create(
            workspace=workspace, user=user or alice, data=pool_input(sim, **overrides)
        )

    return make
