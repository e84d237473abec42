from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from tests.workbench.conftest import PASSWORD, logged_in_client
from workbench.accounts import services
from workbench.accounts.models import Invitation, Membership, Role, User, Workspace

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
CREATE = reverse("accounts:invitation_create", kwargs={"ws": "acme"})


@pytest.fixture
def invitation(alice: User, workspace: Workspace) -> Invitation:
    return services.invitation_create(workspace=workspace, actor=alice, role=Role.MEMBER)


def _accept_url(invitation: Invitation) -> str:
    return reverse("accounts:invitation_accept", kwargs={"token": invitation.token})


def _revoke_url(invitation: Invitation) -> str:
    return reverse(
        "accounts:invitation_revoke", kwargs={"ws": "acme", "invitation_id": invitation.pk}
    )


# --- creating and revoking -----------------------------------------------------------------


def test_it_creates_an_invitation_and_returns_its_row_to_htmx(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    response = alice_client.post(CREATE, {"role": "viewer", "email": "vic@example.com"}, **HTMX)
    invitation = Invitation.objects.get()
    assert (invitation.role, invitation.email, invitation.created_by) == (
        "viewer",
        "vic@example.com",
        alice,
    )
    html = response.content.decode()
    assert html.lstrip().startswith(f'<tr id="invitation-{invitation.pk}"')
    assert f"http://testserver/invite/{invitation.token}/" in html  # the link to copy
    assert 'id="invite-form"' in html and 'hx-swap-oob="true"' in html  # a fresh form
    assert "Invitation created." in html


def test_it_creates_an_invitation_without_htmx(alice_client: Client, workspace: Workspace) -> None:
    response = alice_client.post(CREATE, {"role": "member"}, follow=True)
    invitation = Invitation.objects.get()
    assert f"/invite/{invitation.token}/" in response.content.decode()
    assert list(response.context["invitations"]) == [invitation]


def test_it_shows_form_errors_in_place_for_htmx(alice_client: Client, workspace: Workspace) -> None:
    response = alice_client.post(CREATE, {"role": "member", "email": "not-an-email"}, **HTMX)
    assert response["HX-Retarget"] == "#invite-form"
    assert response["HX-Reswap"] == "outerHTML"
    assert "Enter a valid email address." in response.content.decode()
    assert not Invitation.objects.exists()


def test_it_lets_only_owners_invite_owners(
    make_user: Callable[..., User], workspace: Workspace
) -> None:
    adam = logged_in_client(make_user("adam", workspace=workspace, role=Role.ADMIN))
    adam.post(CREATE, {"role": "owner"})
    assert not Invitation.objects.exists()
    adam.post(CREATE, {"role": "admin"})
    assert Invitation.objects.get().role == Role.ADMIN


def test_it_lists_only_pending_invitations(
    alice_client: Client, alice: User, workspace: Workspace, invitation: Invitation
) -> None:
    expired = services.invitation_create(workspace=workspace, actor=alice, role=Role.MEMBER)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    revoked = services.invitation_create(workspace=workspace, actor=alice, role=Role.MEMBER)
    services.invitation_revoke(invitation=revoked, actor=alice)
    response = alice_client.get(reverse("accounts:workspace_members", kwargs={"ws": "acme"}))
    assert list(response.context["invitations"]) == [invitation]


def test_it_revokes_an_invitation(alice_client: Client, invitation: Invitation) -> None:
    response = alice_client.post(_revoke_url(invitation), **HTMX)
    assert "<tr" not in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.revoked


def test_it_does_not_revoke_a_used_invitation(
    alice_client: Client, invitation: Invitation, charlie: User
) -> None:
    services.invitation_accept(invitation=invitation, user=charlie)
    response = alice_client.post(_revoke_url(invitation), follow=True)
    assert "already been used" in response.content.decode()
    invitation.refresh_from_db()
    assert not invitation.revoked


def test_it_404s_when_revoking_another_workspaces_invitation(
    alice_client: Client, charlie: User, workspace: Workspace
) -> None:
    theirs = services.invitation_create(
        workspace=Workspace.objects.get(slug="charlie"), actor=charlie, role=Role.MEMBER
    )
    url = reverse("accounts:invitation_revoke", kwargs={"ws": "acme", "invitation_id": theirs.pk})
    assert alice_client.post(url).status_code == 404
    theirs.refresh_from_db()
    assert not theirs.revoked


# --- accepting -----------------------------------------------------------------------------


def test_it_invites_an_anonymous_visitor_to_log_in_or_sign_up(
    client: Client, invitation: Invitation
) -> None:
    response = client.get(_accept_url(invitation))
    html = response.content.decode()
    assert response.status_code == 200
    assert "alice</strong> invited you" in html and "Join Acme" in html
    assert f"/signup/?next=/invite/{invitation.token}/" in html
    assert f"/login/?next=/invite/{invitation.token}/" in html


def test_it_lets_a_logged_in_user_accept(
    charlie_client: Client, charlie: User, invitation: Invitation, workspace: Workspace
) -> None:
    assert b"Accept and join as charlie" in charlie_client.get(_accept_url(invitation)).content
    response = charlie_client.post(_accept_url(invitation))
    assert response["Location"] == "/w/acme/"
    assert Membership.objects.get(user=charlie, workspace=workspace).role == Role.MEMBER
    invitation.refresh_from_db()
    assert invitation.accepted_by == charlie and invitation.accepted_at is not None
    charlie.refresh_from_db()
    assert charlie.last_workspace == workspace


def test_it_signs_a_newcomer_up_then_lets_them_accept(
    client: Client, invitation: Invitation, workspace: Workspace
) -> None:
    signup = client.post(
        f"/signup/?next={_accept_url(invitation)}",
        {
            "username": "newt",
            "email": "newt@example.com",
            "password": PASSWORD,
            "password_again": PASSWORD,
        },
    )
    assert signup["Location"] == _accept_url(invitation)
    client.post(_accept_url(invitation))
    assert workspace.memberships.filter(user__username="newt", role=Role.MEMBER).exists()


def test_it_asks_for_a_login_before_accepting(client: Client, invitation: Invitation) -> None:
    response = client.post(_accept_url(invitation))
    assert response["Location"].startswith("/login/")
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_it_shows_a_clear_404_for_a_bad_token(charlie_client: Client) -> None:
    response = charlie_client.get("/invite/not-a-real-token/")
    assert response.status_code == 404
    assert b"This invitation link is not valid" in response.content


def test_it_refuses_an_expired_invitation(
    charlie_client: Client, charlie: User, invitation: Invitation, workspace: Workspace
) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    for response in (
        charlie_client.get(_accept_url(invitation)),
        charlie_client.post(_accept_url(invitation)),
    ):
        assert response.status_code == 410
        assert b"This invitation has expired." in response.content
    assert not Membership.objects.filter(user=charlie, workspace=workspace).exists()


def test_it_refuses_a_revoked_invitation(
    charlie_client: Client, charlie: User, invitation: Invitation, workspace: Workspace
) -> None:
    Invitation.objects.filter(pk=invitation.pk).update(revoked=True)
    response = charlie_client.post(_accept_url(invitation))
    assert response.status_code == 410
    assert b"This invitation was revoked." in response.content
    assert not Membership.objects.filter(user=charlie, workspace=workspace).exists()


def test_it_lets_each_link_work_once(
    charlie_client: Client, invitation: Invitation, make_user: Callable[..., User]
) -> None:
    charlie_client.post(_accept_url(invitation))
    dave = logged_in_client(make_user("dave"))
    response = dave.post(_accept_url(invitation))
    assert response.status_code == 410
    assert b"already been used" in response.content
    assert not Membership.objects.filter(user__username="dave", workspace__slug="acme").exists()


def test_it_keeps_the_link_unused_when_a_member_opens_it(
    bob_client: Client, invitation: Invitation
) -> None:
    assert b"already a member" in bob_client.get(_accept_url(invitation)).content
    response = bob_client.post(_accept_url(invitation), follow=True)
    assert "You are already a member of Acme." in response.content.decode()
    invitation.refresh_from_db()
    assert invitation.accepted_at is None


def test_it_joins_with_the_invited_role(
    alice: User, workspace: Workspace, charlie_client: Client, charlie: User
) -> None:
    invitation = services.invitation_create(workspace=workspace, actor=alice, role=Role.OWNER)
    charlie_client.post(_accept_url(invitation))
    assert Membership.objects.get(user=charlie, workspace=workspace).role == Role.OWNER
