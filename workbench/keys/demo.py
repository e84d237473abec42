"""Demo content: one shared simulated credential, so the demo runs with no API key."""

from __future__ import annotations

from fusion.providers.simulated import PRESETS
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import catalog_replace_listed

DEMO_CREDENTIAL_LABEL = "Simulated (demo)"


def demo_credential(workspace: Workspace) -> Credential | None:
    return Credential.objects.filter(
        workspace=workspace, scope=Scope.WORKSPACE, label=DEMO_CREDENTIAL_LABEL
    ).first()


def demo_seed(*, workspace: Workspace, user: User) -> Credential:
    """Idempotent: finds the demo credential or creates it, and refreshes its catalog."""
    credential = demo_credential(workspace)
    if credential is None:
        credential = Credential.objects.create(
            workspace=workspace,
            scope=Scope.WORKSPACE,
            provider="simulated",
            label=DEMO_CREDENTIAL_LABEL,
            created_by=user,
        )
    catalog_replace_listed(credential, list(PRESETS))
    return credential
