"""The page where members manage their API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from workbench.accounts.access import workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.lib.errors import ServiceError
from workbench.tokens import selectors, services


@workspace_view(min_role=Role.VIEWER)
def token_index(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    membership = request.membership  # type: ignore[attr-defined]
    created = error = None
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        try:
            _, created = services.token_create(
                workspace=workspace,
                user=request.user,  # type: ignore[arg-type]
                name=name,
            )
            name = ""
        except ServiceError as exc:
            error = exc.message
    tokens = selectors.tokens_visible_to(membership)
    rows = [
        {
            "t": t,
            "can_revoke": t.is_active and services.token_can_revoke(t, request.user, membership),
        }  # type: ignore[arg-type]
        for t in tokens
    ]
    context = {
        "workspace": workspace,
        "rows": rows,
        "created": created,  # the raw token, in this one response only
        "error": error,
        "name": name,
        "base_url": request.build_absolute_uri("/v1"),
        "anthropic_url": request.build_absolute_uri("/anthropic"),
        "show_owner": membership.has_role(Role.ADMIN),
    }
    response = render(request, "tokens/index.html", context, status=400 if error else 200)
    if created:
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@workspace_view(min_role=Role.VIEWER)
def token_revoke(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    membership = request.membership  # type: ignore[attr-defined]
    token = selectors.token_get(membership, pk)
    try:
        services.token_revoke(token=token, user=request.user, membership=membership)  # type: ignore[arg-type]
        messages.success(request, f"Revoked the token {token.name}.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("tokens:index", ws=workspace.slug)
