"""People and workspaces every workbench test can use.

alice owns the workspace "acme" (the ``workspace`` fixture), bob is a member of it, vera a
viewer, and charlie an outsider with only his personal workspace. Each has a logged-in client:
``alice_client``, ``bob_client``, ``vera_client``, ``charlie_client``. ``make_user`` makes more
(e.g. an admin). Everyone's password is ``PASSWORD``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable

import pytest
from django.test import Client
from pytest_django.fixtures import Settings as SettingsWrapper

from workbench.accounts import services
from workbench.accounts.models import Membership, Role, User, Workspace

PASSWORD = "fusion-test-passphrase-42"


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings: SettingsWrapper) -> None:
    # The default hasher makes each password cost ~0.3 s; tests need none of that strength.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # A key prefix of its own per test: counters (log-in throttle …) never leak between tests,
    # and nothing is flushed that other processes sharing the Redis might be using.
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["KEY_PREFIX"] = f"test-{uuid.uuid4().hex[:12]}"
    settings.CACHES = caches


@pytest.fixture
def make_user(db: None) -> Callable[..., User]:
    """Sign a user up (with a personal workspace) and optionally add them to a workspace."""

    def make(
        username: str,
        *,
        workspace: Workspace | None = None,
        role: str = Role.MEMBER,
        password: str = PASSWORD,
    ) -> User:
        user = services.user_signup(
            username=username, email=f"{username}@example.com", password=password
        )
        if workspace is not None:
            Membership.objects.create(workspace=workspace, user=user, role=role)
        return user

    return make


def logged_in_client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def alice(make_user: Callable[..., User]) -> User:
    return make_user("alice")


@pytest.fixture
def workspace(alice: User) -> Workspace:
    """ "acme", owned by alice."""
    return services.workspace_create(owner=alice, name="Acme")


@pytest.fixture
def bob(make_user: Callable[..., User], workspace: Workspace) -> User:
    return make_user("bob", workspace=workspace, role=Role.MEMBER)


@pytest.fixture
def vera(make_user: Callable[..., User], workspace: Workspace) -> User:
    return make_user("vera", workspace=workspace, role=Role.VIEWER)


@pytest.fixture
def charlie(make_user: Callable[..., User]) -> User:
    return make_user("charlie")


@pytest.fixture
def alice_client(alice: User) -> Client:
    return logged_in_client(alice)


@pytest.fixture
def bob_client(bob: User) -> Client:
    return logged_in_client(bob)


@pytest.fixture
def vera_client(vera: User) -> Client:
    return logged_in_client(vera)


@pytest.fixture
def charlie_client(charlie: User) -> Client:
    return logged_in_client(charlie)


@pytest.fixture
def root(make_user: Callable[..., User]) -> User:
    """Staff and superuser: the Django admin's user."""
    user = make_user("root")
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def staff_client(root: User) -> Client:
    return logged_in_client(root)
