"""The demo workspace that ``make run`` seeds: a user, a workspace, a simulated credential and
example pools, so a new user can run a fusion within a minute of cloning, with no API key."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction

from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.lib.env import secret_file

DEMO_USERNAME = "demo"
DEMO_WORKSPACE_SLUG = "demo"


@dataclass(frozen=True)
class DemoSeed:
    username: str
    password: str
    workspace_slug: str
    # The user changed the password since it was generated: the file's is no longer theirs.
    password_changed: bool
    # var/demo_password was gone while the user existed, so a new one was generated and set.
    password_reset: bool = False


def _demo_password() -> tuple[str, bool]:
    """Generated once and kept in var/ (mode 0600), so reseeding prints the same password;
    (password, whether it was generated just now)."""
    return secret_file(Path(settings.VAR_DIR) / "demo_password", lambda: secrets.token_urlsafe(12))


@transaction.atomic
def demo_seed() -> DemoSeed:
    password, generated = _demo_password()
    user, created = User.objects.get_or_create(
        username=DEMO_USERNAME, defaults={"email": "demo@example.com"}
    )
    # A new file beside an existing user means the old password is lost (var/ was cleaned):
    # set the new one rather than print a password that does not log in.
    reset = generated and not created
    if created or reset:
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
        password_reset=reset,
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
