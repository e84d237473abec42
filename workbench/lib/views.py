from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.cache import never_cache

from workbench.accounts.selectors import default_workspace_for
from workbench.lib.health import SCOPES, health_report


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    scope = request.GET.get("scope", "all")
    if scope not in SCOPES:
        return JsonResponse({"error": f"scope must be one of {', '.join(SCOPES)}"}, status=400)
    healthy, body = health_report(scope)
    return JsonResponse(body, status=200 if healthy else 503)


@login_required
def home(request: HttpRequest) -> HttpResponse:
    workspace = default_workspace_for(request.user)  # type: ignore[arg-type]
    if workspace is None:
        return redirect("accounts:workspace_create")
    return redirect("accounts:workspace_home", ws=workspace.slug)
