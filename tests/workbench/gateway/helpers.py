"""Tokens and pools for gateway tests."""

from __future__ import annotations

import time

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import credential_create
from workbench.tokens.services import token_create

FAST = "sim-fast@ttft=0.01,tps=400,tokens=20"


def token_for(user: User, workspace: Workspace) -> str:
    return token_create(workspace=workspace, user=user, name="test")[1]


def sim_credential(workspace: Workspace, user: User, label: str | None = None) -> Credential:
    return credential_create(
        workspace=workspace, user=user, provider="simulated",
        label=label or f"sim{time.monotonic_ns()}", scope=Scope.WORKSPACE,
    )  # fmt: skip
