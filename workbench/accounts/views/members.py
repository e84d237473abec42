"""The members page: roles, removal and leaving. Row actions answer htmx with the row."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from workbench.accounts import selectors, services
from workbench.accounts.access import workspace_view
from workbench.accounts.forms import InvitationForm, RoleForm
from workbench.accounts.models import Membership, Role, Workspace
from workbench.accounts.views._helpers import htmx_fragment
from workbench.lib.errors import ServiceError


def member_row(me: Membership, member: Membership) -> dict[str, Any]:
    """What ``me`` may do to ``member``'s row; the service checks again on submit."""
    is_me = member.pk == me.pk
    touches_owner = member.role == Role.OWNER
    allowed = me.can_manage and (me.role == Role.OWNER or not touches_owner)
    roles = [(r.value, r.label) for r in Role if me.role == Role.OWNER or r != Role.OWNER]
    return {
        "m": member,
        "is_me": is_me,
        "can_change_role": allowed,
        "can_remove": allowed and not is_me,
        "role_choices": roles,
    }


def _members_url(workspace: Workspace) -> str:
    return reverse("accounts:workspace_members", kwargs={"ws": workspace.slug})


@workspace_view(min_role=Role.VIEWER)
@require_safe
def workspace_members(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    me: Membership = request.membership  # type: ignore[attr-defined]
    rows = [member_row(me, m) for m in selectors.memberships_of_workspace(workspace)]
    context: dict[str, Any] = {"rows": rows, "invite_ttl_days": settings.INVITE_TTL_DAYS}
    if me.can_manage:
        context["invitations"] = selectors.pending_invitations(workspace)
        context["invite_form"] = InvitationForm(can_grant_owner=me.role == Role.OWNER)
    return render(request, "accounts/workspace_members.html", context)


@workspace_view(min_role=Role.ADMIN)
@require_POST
def membership_role(request: HttpRequest, workspace: Workspace, membership_id: int) -> HttpResponse:
    member = selectors.member_of_workspace(workspace, membership_id)
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles.")
    else:
        try:
            member = services.membership_change_role(
                membership=member,
                actor=request.user,  # type: ignore[arg-type]
                role=form.cleaned_data["role"],
            )
        except ServiceError as err:
            messages.error(request, err.message)
        else:
            messages.success(request, f"{member.user.username} is now {member.get_role_display()}.")
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect(_members_url(workspace))
    # An owner who demoted themselves may no longer manage; re-read what they may do.
    me = selectors.membership_for(request.user, workspace.slug)  # type: ignore[arg-type]
    if not me.can_manage:
        return HttpResponseClientRedirect(_members_url(workspace))
    return htmx_fragment(request, "accounts/partials/member_row.html", member_row(me, member))


@workspace_view(min_role=Role.ADMIN)
@require_POST
def membership_remove(
    request: HttpRequest, workspace: Workspace, membership_id: int
) -> HttpResponse:
    member = selectors.member_of_workspace(workspace, membership_id)
    me: Membership = request.membership  # type: ignore[attr-defined]
    try:
        services.membership_remove(membership=member, actor=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        removed = False
    else:
        messages.success(request, f"{member.user.username} was removed from {workspace.name}.")
        removed = True
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect(_members_url(workspace))
    if removed:
        return htmx_fragment(request, None)  # an empty row: htmx drops it
    return htmx_fragment(request, "accounts/partials/member_row.html", member_row(me, member))


@workspace_view(min_role=Role.VIEWER)
@require_POST
def membership_leave(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """Anyone may leave, viewers too: it changes only their own access."""
    try:
        services.membership_leave(workspace=workspace, user=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        return redirect(_members_url(workspace))
    messages.success(request, f"You have left {workspace.name}.")
    return redirect("home")
