"""The demo workspace that ``make run`` seeds: a user, a workspace, a simulated credential and
example pools, so a new user can run a fusion within a minute of cloning, with no API key."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from workbench.accounts.models import Membership, Role, User, Workspace

DEMO_USERNAME = "demo"
DEMO_WORKSPACE_SLUG = "demo"


@dataclass(frozen=True)
class DemoSeed:
    username: str
    password: str
    workspace_slug: str
    password_changed: bool


def _demo_password() -> str:
    """Generated once and kept in var/ (mode 0600), so reseeding prints the same password."""
    path = Path(settings.VAR_DIR) / "demo_password"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


@transaction.atomic
def demo_seed() -> DemoSeed:
    password = _demo_password()
    user, created = User.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
    )
    if created:
        user.set_password(password)
        user.save()
    workspace, _ = Workspace.objects.get_or_create(
        slug=DEMO_WORKSPACE_SLUG, defaults={"name": "Demo workspace"}
    )
    Membership.objects.get_or_create(workspace=workspace, user=user, defaults={"role": Role.OWNER})
    for seed_more in _app_seeders():
        seed_more(workspace=workspace, user=user)
    return DemoSeed(
        username=user.username,
        password=password,
        workspace_slug=workspace.slug,
        password_changed=not user.check_password(password),
    )


def _app_seeders() -> list:  # type: ignore[type-arg]
    """Each app that has demo content exposes ``demo_seed(workspace=, user=)`` in services."""
    from importlib import import_module

    seeders = []
    for module in (
        "workbench.keys.demo",
        "workbench.pools.demo",
        "workbench.experiments.demo",
    ):
        try:
            seeders.append(import_module(module).demo_seed)
        except ModuleNotFoundError:
            continue
    return seeders
