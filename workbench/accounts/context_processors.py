from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from workbench.accounts.nav import nav_links
from workbench.accounts.selectors import workspaces_for_user


def workspaces(request: HttpRequest) -> dict[str, Any]:
    """The workspace switcher, the active workspace and its sections, for the base layout.

    ``workspace`` and ``membership`` are set only on workspace pages; ``nav_workspace`` is the
    one the navigation shows everywhere else (the last one visited), so the user always sees
    where they are working.
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    workspace = getattr(request, "workspace", None)
    membership = getattr(request, "membership", None)
    my_workspaces = list(workspaces_for_user(user))  # type: ignore[arg-type]
    # Same choice as selectors.default_workspace_for, without querying again.
    nav_workspace = workspace or next(
        (w for w in my_workspaces if w.id == user.last_workspace_id),
        my_workspaces[0] if my_workspaces else None,
    )
    return {
        "my_workspaces": my_workspaces,
        "workspace": workspace,
        "membership": membership,
        "nav_workspace": nav_workspace,
        "nav_links": nav_links(request, nav_workspace, membership) if nav_workspace else [],
    }
