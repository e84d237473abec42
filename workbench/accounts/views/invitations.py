"""Invitation links: create and revoke (admins), and the page where a link is accepted."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from workbench.accounts import selectors, services
from workbench.accounts.access import workspace_view
from workbench.accounts.forms import InvitationForm
from workbench.accounts.models import Invitation, Role, Workspace
from workbench.accounts.views._helpers import htmx_fragment
from workbench.lib.errors import ServiceError


@workspace_view(min_role=Role.ADMIN)
@require_POST
def invitation_create(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    is_owner = request.membership.role == Role.OWNER  # type: ignore[attr-defined]
    form = InvitationForm(request.POST, can_grant_owner=is_owner)
    invitation: Invitation | None = None
    if form.is_valid():
        try:
            invitation = services.invitation_create(
                workspace=workspace,
                actor=request.user,  # type: ignore[arg-type]
                role=form.cleaned_data["role"],
                email=form.cleaned_data["email"],
            )
        except ServiceError as err:
            form.add_service_error(err)
    if invitation is not None:
        messages.success(request, "Invitation created. Copy the link and send it.")
    if not request.htmx:  # type: ignore[attr-defined]
        if invitation is None:
            for error in form.errors.values():
                messages.error(request, error[0])
        return redirect("accounts:workspace_members", ws=workspace.slug)
    if invitation is None:
        # Show the errors in the form instead of adding a row.
        response = htmx_fragment(
            request, "accounts/partials/invite_form.html", {"invite_form": form}
        )
        return reswap(retarget(response, "#invite-form"), "outerHTML")
    # The new row, and a blank form swapped in out of band for the next invitation.
    return htmx_fragment(
        request,
        "accounts/partials/invite_created.html",
        {
            "invitation": invitation,
            "fresh": True,
            "invite_form": InvitationForm(can_grant_owner=is_owner),
        },
    )


@workspace_view(min_role=Role.ADMIN)
@require_POST
def invitation_revoke(
    request: HttpRequest, workspace: Workspace, invitation_id: int
) -> HttpResponse:
    invitation = selectors.invitation_of_workspace(workspace, invitation_id)
    try:
        services.invitation_revoke(invitation=invitation, actor=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
    else:
        messages.success(request, "Invitation revoked; its link no longer works.")
    if not request.htmx:  # type: ignore[attr-defined]
        return redirect("accounts:workspace_members", ws=workspace.slug)
    return htmx_fragment(request, None)


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Anyone holding the link sees who invited them; members accept it after logging in."""
    invitation = selectors.invitation_by_token(token)
    if invitation is None:
        return render(request, "accounts/invite_invalid.html", status=404)
    problem = selectors.invitation_problem(invitation)
    if problem is not None:
        return render(request, "accounts/invite_unusable.html", {"message": problem[1]}, status=410)
    if request.method == "POST":
        return _accept(request, invitation)
    already_member = (
        request.user.is_authenticated
        and invitation.workspace.memberships.filter(user=request.user).exists()
    )
    return render(
        request,
        "accounts/invite.html",
        {"invitation": invitation, "already_member": already_member},
    )


@login_required
def _accept(request: HttpRequest, invitation: Invitation) -> HttpResponse:
    try:
        membership = services.invitation_accept(
            invitation=invitation,
            user=request.user,  # type: ignore[arg-type]
        )
    except ServiceError as err:
        messages.error(request, err.message)
        if err.code == "already_member":
            return redirect("accounts:workspace_home", ws=invitation.workspace.slug)
        return redirect("accounts:invitation_accept", token=invitation.token)
    messages.success(
        request,
        f"You have joined {membership.workspace.name} as {membership.get_role_display().lower()}.",
    )
    return redirect("accounts:workspace_home", ws=membership.workspace.slug)
