"""Workspace scoping of API routes: the same rules as the pages (outsiders 404, low role 403)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest

from workbench.accounts.models import Membership, Role, User
from workbench.accounts.selectors import membership_for


def api_user(request: HttpRequest) -> User:
    # ``request.auth`` is what the auth callable returned: the user, for session and tokens.
    user = getattr(request, "auth", None) or request.user
    return user  # type: ignore[return-value]


def api_membership(request: HttpRequest, ws: str, min_role: str = Role.VIEWER) -> Membership:
    token = getattr(request, "api_token", None)
    if token is not None and token.workspace.slug != ws:
        raise Http404  # a token reaches its own workspace only
    membership = membership_for(api_user(request), ws)
    if not membership.has_role(min_role):
        raise PermissionDenied(f"This needs the {min_role} role or higher.")
    return membership
