from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from tests.workbench.conftest import logged_in_client
from workbench.accounts.models import Membership, Role, User, Workspace

pytestmark = pytest.mark.django_db


def _url(name: str, ws: str = "acme") -> str:
    return reverse(f"accounts:{name}", kwargs={"ws": ws})


# --- list and create -----------------------------------------------------------------------


def test_it_lists_only_the_users_workspaces(
    alice_client: Client, workspace: Workspace, charlie: User
) -> None:
    response = alice_client.get(reverse("accounts:workspace_list"))
    names = [m.workspace.name for m in response.context["memberships"]]
    assert names == ["alice", "Acme"]  # personal first
    assert b"charlie" not in response.content


def test_it_creates_a_workspace_with_a_unique_slug(alice_client: Client, alice: User) -> None:
    response = alice_client.post(reverse("accounts:workspace_create"), {"name": "Research Lab"})
    workspace = Workspace.objects.get(name="Research Lab")
    assert workspace.slug == "research-lab"
    assert not workspace.personal
    assert Membership.objects.get(workspace=workspace, user=alice).role == Role.OWNER
    assert response["Location"] == _url("workspace_members", "research-lab")

    alice_client.post(reverse("accounts:workspace_create"), {"name": "research  lab!"})
    assert Workspace.objects.get(name="research lab!").slug == "research-lab-2"


def test_it_makes_a_slug_for_a_name_without_latin_letters(alice_client: Client) -> None:
    alice_client.post(reverse("accounts:workspace_create"), {"name": "研究"})
    assert Workspace.objects.get(name="研究").slug == "workspace"


def test_it_refuses_a_blank_name(alice_client: Client) -> None:
    response = alice_client.post(reverse("accounts:workspace_create"), {"name": "   "})
    assert response.status_code == 200
    assert "name" in response.context["form"].errors


# --- home and the active workspace ---------------------------------------------------------


def test_it_shows_the_workspace_home_with_its_members(
    alice_client: Client, workspace: Workspace, bob: User, vera: User
) -> None:
    response = alice_client.get(_url("workspace_home"))
    assert response.status_code == 200
    assert [m.user.username for m in response.context["memberships"]] == ["alice", "bob", "vera"]
    assert response.context["member_count"] == 3
    assert b"Recent runs" in response.content


def test_it_remembers_the_last_workspace_for_the_home_redirect(
    alice_client: Client, alice: User, workspace: Workspace
) -> None:
    alice_client.get(_url("workspace_home", "alice"))
    assert alice_client.get(reverse("home"))["Location"] == _url("workspace_home", "alice")
    alice_client.get(_url("workspace_home", "acme"))
    assert alice_client.get(reverse("home"))["Location"] == _url("workspace_home", "acme")


def test_it_scopes_the_navigation_to_the_active_workspace(
    alice_client: Client, workspace: Workspace
) -> None:
    response = alice_client.get(_url("workspace_home"))
    html = response.content.decode()
    assert response.context["nav_workspace"] == workspace
    assert 'data-testid="current-workspace">Acme<' in html
    # The switcher lists both of alice's workspaces; the sections link into acme.
    assert _url("workspace_home", "alice") in html
    links = {link.label: link for link in response.context["nav_links"]}
    assert list(links) == ["Home", "Runs", "Pools", "Keys", "Experiments", "Usage", "Judges"]
    assert links["Home"].active and links["Home"].url == _url("workspace_home")
    assert all(link.url.startswith("/w/acme/") for link in links.values())


def test_it_shows_the_last_workspace_in_the_navigation_on_other_pages(
    alice_client: Client, workspace: Workspace
) -> None:
    alice_client.get(_url("workspace_home"))
    response = alice_client.get(reverse("accounts:account_settings"))
    assert response.context["nav_workspace"] == workspace
    assert response.context["workspace"] is None


# --- settings ------------------------------------------------------------------------------


def test_it_renames_and_sets_blind_mode(alice_client: Client, workspace: Workspace) -> None:
    response = alice_client.post(
        _url("workspace_settings"), {"name": "Acme Corp", "blind_mode": "on"}
    )
    assert response["Location"] == _url("workspace_settings")
    workspace.refresh_from_db()
    assert (workspace.name, workspace.slug, workspace.blind_mode) == ("Acme Corp", "acme", True)


def test_it_lets_admins_change_settings(
    make_user: Callable[..., User], workspace: Workspace
) -> None:
    adam = make_user("adam", workspace=workspace, role=Role.ADMIN)
    response = logged_in_client(adam).post(_url("workspace_settings"), {"name": "Acme 2"})
    assert response.status_code == 302
    workspace.refresh_from_db()
    assert workspace.name == "Acme 2"


def test_it_refuses_an_empty_name_in_settings(alice_client: Client, workspace: Workspace) -> None:
    response = alice_client.post(_url("workspace_settings"), {"name": ""})
    assert response.status_code == 200
    assert "name" in response.context["form"].errors


# --- delete --------------------------------------------------------------------------------


def test_it_deletes_a_team_workspace_after_confirmation(
    alice_client: Client, alice: User, workspace: Workspace, bob: User
) -> None:
    response = alice_client.post(_url("workspace_delete"), {"confirm": "acme"})
    assert response["Location"] == reverse("home")
    assert not Workspace.objects.filter(slug="acme").exists()
    # Everyone lands somewhere that still exists.
    alice.refresh_from_db()
    assert alice.last_workspace is None
    assert alice_client.get(reverse("home"))["Location"] == _url("workspace_home", "alice")


def test_it_does_not_delete_without_the_slug_typed(
    alice_client: Client, workspace: Workspace
) -> None:
    response = alice_client.post(_url("workspace_delete"), {"confirm": "Acme"}, follow=True)
    assert Workspace.objects.filter(slug="acme").exists()
    assert "Type acme to delete this workspace." in response.content.decode()


def test_it_never_deletes_a_personal_workspace(alice_client: Client, alice: User) -> None:
    response = alice_client.post(
        _url("workspace_delete", "alice"), {"confirm": "alice"}, follow=True
    )
    assert Workspace.objects.filter(slug="alice").exists()
    assert "A personal workspace cannot be deleted." in response.content.decode()


def test_it_lets_only_owners_delete(make_user: Callable[..., User], workspace: Workspace) -> None:
    adam = make_user("adam", workspace=workspace, role=Role.ADMIN)
    response = logged_in_client(adam).post(_url("workspace_delete"), {"confirm": "acme"})
    assert response.status_code == 403
    assert Workspace.objects.filter(slug="acme").exists()
