from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django.urls import reverse

from tests.workbench.conftest import logged_in_client
from workbench.accounts.models import Membership, Role, User, Workspace

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


def _members() -> str:
    return reverse("accounts:workspace_members", kwargs={"ws": "acme"})


def _m(user: User, workspace: Workspace) -> Membership:
    return Membership.objects.get(user=user, workspace=workspace)


def _role_url(membership: Membership) -> str:
    return reverse(
        "accounts:membership_role", kwargs={"ws": "acme", "membership_id": membership.pk}
    )


def _remove_url(membership: Membership) -> str:
    return reverse(
        "accounts:membership_remove", kwargs={"ws": "acme", "membership_id": membership.pk}
    )


def _leave_url(ws: str = "acme") -> str:
    return reverse("accounts:membership_leave", kwargs={"ws": ws})


@pytest.fixture
def adam(make_user: Callable[..., User], workspace: Workspace) -> User:
    return make_user("adam", workspace=workspace, role=Role.ADMIN)


@pytest.fixture
def adam_client(adam: User) -> Client:
    return logged_in_client(adam)


# --- the page ------------------------------------------------------------------------------


def test_it_lists_members_with_their_roles(
    bob_client: Client, workspace: Workspace, bob: User, vera: User
) -> None:
    response = bob_client.get(_members())
    rows = response.context["rows"]
    assert [(r["m"].user.username, r["m"].role) for r in rows] == [
        ("alice", "owner"),
        ("bob", "member"),
        ("vera", "viewer"),
    ]
    # A member sees no controls but may leave.
    assert not any(r["can_change_role"] or r["can_remove"] for r in rows)
    assert "invite_form" not in response.context
    assert b"Leave" in response.content
    assert b"role-select" not in response.content


def test_it_gives_admins_controls_except_over_owners(
    adam_client: Client, bob: User, vera: User
) -> None:
    rows = {r["m"].user.username: r for r in adam_client.get(_members()).context["rows"]}
    assert not rows["alice"]["can_change_role"] and not rows["alice"]["can_remove"]
    assert rows["bob"]["can_change_role"] and rows["bob"]["can_remove"]
    assert Role.OWNER.value not in [value for value, _ in rows["bob"]["role_choices"]]


def test_it_gives_owners_every_control(alice_client: Client, bob: User) -> None:
    rows = {r["m"].user.username: r for r in alice_client.get(_members()).context["rows"]}
    assert rows["bob"]["can_change_role"] and rows["bob"]["can_remove"]
    assert Role.OWNER.value in [value for value, _ in rows["bob"]["role_choices"]]
    assert rows["alice"]["is_me"] and not rows["alice"]["can_remove"]


# --- roles ---------------------------------------------------------------------------------


def test_it_changes_a_role_and_returns_the_row_to_htmx(
    alice_client: Client, workspace: Workspace, bob: User
) -> None:
    response = alice_client.post(_role_url(_m(bob, workspace)), {"role": "admin"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="member-{_m(bob, workspace).pk}"')
    assert '<option value="admin" selected>' in html
    assert "bob is now Admin." in html  # the toast, swapped in out of band
    assert 'hx-swap-oob="beforeend"' in html
    assert _m(bob, workspace).role == Role.ADMIN


def test_it_changes_a_role_without_htmx_too(
    alice_client: Client, workspace: Workspace, bob: User
) -> None:
    response = alice_client.post(_role_url(_m(bob, workspace)), {"role": "viewer"})
    assert response["Location"] == _members()
    assert _m(bob, workspace).role == Role.VIEWER


def test_it_lets_admins_change_roles_below_owner(
    adam_client: Client, workspace: Workspace, bob: User
) -> None:
    adam_client.post(_role_url(_m(bob, workspace)), {"role": "admin"})
    assert _m(bob, workspace).role == Role.ADMIN


def test_it_lets_only_owners_make_owners(
    adam_client: Client, workspace: Workspace, bob: User
) -> None:
    response = adam_client.post(_role_url(_m(bob, workspace)), {"role": "owner"}, follow=True)
    assert "Only owners can make or unmake owners." in response.content.decode()
    assert _m(bob, workspace).role == Role.MEMBER


def test_it_lets_only_owners_unmake_owners(
    adam_client: Client, alice_client: Client, workspace: Workspace, bob: User, alice: User
) -> None:
    alice_client.post(_role_url(_m(bob, workspace)), {"role": "owner"})
    assert _m(bob, workspace).role == Role.OWNER
    response = adam_client.post(_role_url(_m(alice, workspace)), {"role": "member"}, follow=True)
    assert "Only owners can make or unmake owners." in response.content.decode()
    assert _m(alice, workspace).role == Role.OWNER


def test_it_refuses_to_demote_the_last_owner(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    response = alice_client.post(_role_url(_m(alice, workspace)), {"role": "admin"}, **HTMX)
    html = response.content.decode()
    assert "alice is the last owner of Acme and cannot be demoted" in html
    assert '<option value="owner" selected>' in html  # the row shows the role unchanged
    assert _m(alice, workspace).role == Role.OWNER


def test_it_lets_an_owner_step_down_when_another_owner_remains(
    alice_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    alice_client.post(_role_url(_m(bob, workspace)), {"role": "owner"})
    response = alice_client.post(_role_url(_m(alice, workspace)), {"role": "member"}, **HTMX)
    # She may no longer manage, so htmx reloads the page instead of swapping a row.
    assert response["HX-Redirect"] == _members()
    assert _m(alice, workspace).role == Role.MEMBER


def test_it_refuses_an_unknown_role(alice_client: Client, workspace: Workspace, bob: User) -> None:
    response = alice_client.post(_role_url(_m(bob, workspace)), {"role": "god"}, follow=True)
    assert "Choose one of the roles." in response.content.decode()
    assert _m(bob, workspace).role == Role.MEMBER


def test_it_404s_for_a_membership_of_another_workspace(alice_client: Client, charlie: User) -> None:
    other = Membership.objects.get(user=charlie)
    url = reverse("accounts:membership_role", kwargs={"ws": "acme", "membership_id": other.pk})
    assert alice_client.post(url, {"role": "viewer"}).status_code == 404
    assert Membership.objects.get(user=charlie).role == Role.OWNER


# --- removal -------------------------------------------------------------------------------


def test_it_removes_a_member_and_empties_the_row_for_htmx(
    alice_client: Client, workspace: Workspace, bob: User
) -> None:
    response = alice_client.post(_remove_url(_m(bob, workspace)), **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<tr" not in html
    assert "bob was removed from Acme." in html
    assert not Membership.objects.filter(user=bob, workspace=workspace).exists()


def test_it_forgets_a_removed_members_last_workspace(
    alice_client: Client, bob_client: Client, workspace: Workspace, bob: User
) -> None:
    bob_client.get(reverse("accounts:workspace_home", kwargs={"ws": "acme"}))
    alice_client.post(_remove_url(_m(bob, workspace)))
    bob.refresh_from_db()
    assert bob.last_workspace is None
    assert bob_client.get(reverse("home"))["Location"] == "/w/bob/"
    assert bob_client.get("/w/acme/").status_code == 404


def test_it_lets_admins_remove_members_but_not_owners(
    adam_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    adam_client.post(_remove_url(_m(bob, workspace)))
    assert not Membership.objects.filter(user=bob, workspace=workspace).exists()
    response = adam_client.post(_remove_url(_m(alice, workspace)), follow=True)
    assert "Only owners can remove owners." in response.content.decode()
    assert _m(alice, workspace).role == Role.OWNER


def test_it_refuses_to_remove_the_last_owner(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    response = alice_client.post(_remove_url(_m(alice, workspace)), **HTMX)
    assert "alice is the last owner of Acme and cannot be removed" in response.content.decode()
    assert Membership.objects.filter(user=alice, workspace=workspace).exists()


# --- leaving -------------------------------------------------------------------------------


def test_it_lets_a_member_leave(bob_client: Client, workspace: Workspace, bob: User) -> None:
    response = bob_client.post(_leave_url())
    assert response["Location"] == reverse("home")
    assert not Membership.objects.filter(user=bob, workspace=workspace).exists()
    assert bob_client.get(reverse("home"))["Location"] == "/w/bob/"


def test_it_lets_a_viewer_leave(vera_client: Client, workspace: Workspace, vera: User) -> None:
    vera_client.post(_leave_url())
    assert not Membership.objects.filter(user=vera, workspace=workspace).exists()


def test_it_refuses_to_let_the_last_owner_leave(
    alice_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    response = alice_client.post(_leave_url(), follow=True)
    assert "You are the last owner of Acme" in response.content.decode()
    assert _m(alice, workspace).role == Role.OWNER


def test_it_lets_an_owner_leave_when_another_owner_remains(
    alice_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    alice_client.post(_role_url(_m(bob, workspace)), {"role": "owner"})
    alice_client.post(_leave_url())
    assert list(workspace.memberships.values_list("user__username", "role")) == [("bob", "owner")]
