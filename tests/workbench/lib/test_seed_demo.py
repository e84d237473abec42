"""``manage.py seed_demo``: the demo login ``make run`` prints, every time, and that works."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.keys.models import CatalogModel, Credential
from workbench.pools.models import Pool

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_var_dir(settings: SettingsWrapper, tmp_path: Path) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path


def _seed() -> tuple[dict[str, str], str]:
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    text = out.getvalue()
    printed = dict(re.findall(r"^  (user|password|workspace):\s+(\S.*)$", text, re.M))
    return printed, text


def _logs_in(username: str, password: str) -> bool:
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": username, "password": password})
    return response.status_code == 302 and "_auth_user_id" in client.session


def test_it_prints_a_login_that_works() -> None:
    printed, _ = _seed()
    assert printed["user"] == "demo"
    assert printed["workspace"] == "demo"
    assert len(printed["password"]) >= 12
    assert _logs_in("demo", printed["password"])
    # The workspace it names is the user's, with something to run in it.
    client = Client()
    client.login(username="demo", password=printed["password"])
    assert client.get(f"/w/{printed['workspace']}/").status_code == 200


def test_it_is_idempotent_and_prints_the_same_login_again() -> None:
    first, _ = _seed()
    counts = {
        "pools": Pool.objects.count(),
        "credentials": Credential.objects.count(),
        "catalog": CatalogModel.objects.count(),
    }
    assert counts["pools"] >= 1 and counts["credentials"] == 1 and counts["catalog"] >= 1

    second, text = _seed()
    assert second == first
    assert "reset" not in text
    assert User.objects.filter(username="demo").count() == 1
    assert Workspace.objects.filter(slug="demo").count() == 1
    membership = Membership.objects.get()
    assert (membership.user.username, membership.role) == ("demo", Role.OWNER)
    assert {
        "pools": Pool.objects.count(),
        "credentials": Credential.objects.count(),
        "catalog": CatalogModel.objects.count(),
    } == counts
    assert _logs_in("demo", second["password"])


def test_it_resets_the_password_when_its_file_was_deleted(_own_var_dir: Path) -> None:
    first, _ = _seed()
    (_own_var_dir / "demo_password").unlink()

    second, text = _seed()
    assert second["password"] != first["password"]
    assert "was missing, so the demo user's password was reset" in text
    assert _logs_in("demo", second["password"])
    assert not _logs_in("demo", first["password"])
    assert (_own_var_dir / "demo_password").read_text().strip() == second["password"]
    # And from then on it is stable again.
    assert _seed()[0] == second


def test_it_does_not_overwrite_a_password_the_user_chose() -> None:
    _seed()
    user = User.objects.get(username="demo")
    user.set_password("my-own-demo-passphrase-42")
    user.save()

    printed, _ = _seed()
    assert printed["password"] == "(changed by the user since it was generated)"
    assert _logs_in("demo", "my-own-demo-passphrase-42")
