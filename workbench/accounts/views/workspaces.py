"""The user's workspaces: list, create, home, settings and delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from workbench.accounts import selectors, services
from workbench.accounts.access import workspace_view
from workbench.accounts.forms import WorkspaceDeleteForm, WorkspaceForm, WorkspaceSettingsForm
from workbench.accounts.models import Role, Workspace
from workbench.lib.errors import ServiceError


@login_required
@require_safe
def workspace_list(request: HttpRequest) -> HttpResponse:
    memberships = selectors.memberships_of_user(request.user)  # type: ignore[arg-type]
    return render(request, "accounts/workspace_list.html", {"memberships": memberships})


@login_required
def workspace_create(request: HttpRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            workspace = services.workspace_create(
                owner=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
            )
        except ServiceError as err:
            form.add_service_error(err)
        else:
            messages.success(request, f"{workspace.name} is ready. Invite your team from here.")
            return redirect("accounts:workspace_members", ws=workspace.slug)
    return render(request, "accounts/workspace_create.html", {"form": form})


@workspace_view(min_role=Role.VIEWER)
@require_safe
def workspace_home(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    memberships = selectors.memberships_of_workspace(workspace)
    context = {
        "memberships": memberships[:8],
        "member_count": memberships.count(),
        "pending_invitation_count": selectors.pending_invitations(workspace).count()
        if request.membership.can_manage  # type: ignore[attr-defined]
        else None,
    }
    return render(request, "accounts/workspace_home.html", context)


@workspace_view(min_role=Role.ADMIN)
def workspace_settings(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    form = WorkspaceSettingsForm(
        request.POST or None,
        initial={"name": workspace.name, "blind_mode": workspace.blind_mode},
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.workspace_update(
                workspace=workspace,
                actor=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                blind_mode=form.cleaned_data["blind_mode"],
            )
        except ServiceError as err:
            form.add_service_error(err)
        else:
            messages.success(request, "Workspace settings saved.")
            return redirect("accounts:workspace_settings", ws=workspace.slug)
    delete_form = WorkspaceDeleteForm(slug=workspace.slug)
    return render(
        request, "accounts/workspace_settings.html", {"form": form, "delete_form": delete_form}
    )


@workspace_view(min_role=Role.OWNER)
@require_POST
def workspace_delete(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    form = WorkspaceDeleteForm(request.POST, slug=workspace.slug)
    if not form.is_valid():
        messages.error(request, form.errors["confirm"][0])
        return redirect("accounts:workspace_settings", ws=workspace.slug)
    try:
        services.workspace_delete(workspace=workspace, actor=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        return redirect("accounts:workspace_settings", ws=workspace.slug)
    messages.success(request, f"{workspace.name} has been deleted.")
    return redirect("home")
