"""Access checks for workspace pages: one decorator every workspace view goes through.

Outsiders get 404 (the workspace might as well not exist); members whose role is too low
for the action get 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from workbench.accounts.models import Role
from workbench.accounts.selectors import membership_for

View = Callable[..., HttpResponse]


def workspace_view(min_role: str = Role.VIEWER) -> Callable[[View], View]:
    """Resolve ``<slug:ws>`` from the URL into ``request.workspace`` and ``request.membership``.

    Views receive the workspace instead of the slug.
    """

    def decorate(view: View) -> View:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, ws: str, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = membership_for(request.user, ws)  # type: ignore[arg-type]
            if not membership.has_role(min_role):
                raise PermissionDenied(f"This needs the {min_role} role or higher.")
            request.workspace = membership.workspace  # type: ignore[attr-defined]
            request.membership = membership  # type: ignore[attr-defined]
            user = request.user
            if user.last_workspace_id != membership.workspace_id:  # type: ignore[union-attr]
                user.last_workspace = membership.workspace  # type: ignore[union-attr]
                user.save(update_fields=["last_workspace"])  # type: ignore[union-attr]
            return view(request, membership.workspace, *args, **kwargs)

        return wrapper

    return decorate


def require_role(request: HttpRequest, minimum: str) -> None:
    """For views that allow reading to all members but writing only to some."""
    if not request.membership.has_role(minimum):  # type: ignore[attr-defined]
        raise PermissionDenied(f"This needs the {minimum} role or higher.")
