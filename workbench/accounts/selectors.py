"""Reads about people and workspaces, always from the point of view of one user."""

from __future__ import annotations

from django.db.models import Count, QuerySet
from django.http import Http404
from django.utils import timezone

from workbench.accounts.models import Invitation, Membership, User, Workspace


def workspaces_for_user(user: User) -> QuerySet[Workspace]:
    return Workspace.objects.filter(memberships__user=user).order_by("-personal", "name")


def membership_for(user: User, workspace_slug: str) -> Membership:
    """The user's membership in the workspace, or 404: outsiders learn nothing, not even
    that the workspace exists."""
    if not user.is_authenticated:
        raise Http404
    try:
        return Membership.objects.select_related("workspace").get(
            user=user, workspace__slug=workspace_slug
        )
    except Membership.DoesNotExist:
        raise Http404 from None


def memberships_of_workspace(workspace: Workspace) -> QuerySet[Membership]:
    return workspace.memberships.select_related("user").order_by("joined_at")


def default_workspace_for(user: User) -> Workspace | None:
    if (
        user.last_workspace_id
        and Membership.objects.filter(user=user, workspace_id=user.last_workspace_id).exists()
    ):
        return user.last_workspace
    return workspaces_for_user(user).first()


def member_of_workspace(workspace: Workspace, membership_id: int) -> Membership:
    """A membership of this workspace by id, or 404 (ids from other workspaces do not leak)."""
    try:
        return workspace.memberships.select_related("user", "workspace").get(pk=membership_id)
    except Membership.DoesNotExist:
        raise Http404 from None


def pending_invitations(workspace: Workspace) -> QuerySet[Invitation]:
    return workspace.invitations.filter(
        revoked=False, accepted_at__isnull=True, expires_at__gt=timezone.now()
    ).select_related("created_by")


def invitation_of_workspace(workspace: Workspace, invitation_id: int) -> Invitation:
    try:
        return workspace.invitations.select_related("workspace").get(pk=invitation_id)
    except Invitation.DoesNotExist:
        raise Http404 from None


def invitation_by_token(token: str) -> Invitation | None:
    return Invitation.objects.select_related("workspace", "created_by").filter(token=token).first()


def invitation_problem(invitation: Invitation) -> tuple[str, str] | None:
    """Why the link can no longer be used, as (code, message for the person holding it)."""
    if invitation.revoked:
        return "revoked", "This invitation was revoked. Ask for a new link if you still need one."
    if invitation.accepted_at is not None:
        return "used", "This invitation has already been used. Each link works once."
    if invitation.expires_at <= timezone.now():
        return "expired", "This invitation has expired. Ask for a new link."
    return None


def memberships_of_user(user: User) -> QuerySet[Membership]:
    """The user's memberships with their workspaces and how many people each has."""
    return (
        Membership.objects.filter(user=user)
        .select_related("workspace")
        .annotate(member_count=Count("workspace__memberships"))
        .order_by("-workspace__personal", "workspace__name")
    )
