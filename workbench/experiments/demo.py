"""Demo content: the sample dataset, so a first experiment is one click away."""

from __future__ import annotations

from workbench.accounts.models import User, Workspace
from workbench.experiments.models import Dataset
from workbench.experiments.services import dataset_install_sample


def demo_seed(*, workspace: Workspace, user: User) -> Dataset:
    """Idempotent: installs the sample dataset unless the workspace has it."""
    return dataset_install_sample(workspace=workspace, user=user)
