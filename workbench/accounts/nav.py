"""The sections of a workspace shown in the top navigation.

Each entry names a workspace page's URL (reversed with ``ws=<slug>``); a name that does not
resolve is an error, not a dead link. Add or reorder sections in ``SECTIONS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse

from workbench.accounts.models import Membership, Role, Workspace


@dataclass(frozen=True)
class Section:
    label: str
    url_name: str
    # The entry is highlighted when the current view's name starts with this.
    active_prefix: str
    min_role: Role = Role.VIEWER


SECTIONS: list[Section] = [
    Section("Home", "accounts:workspace_home", "accounts:workspace_home"),
    Section("Runs", "runs:index", "runs:"),
    Section("Pools", "pools:index", "pools:"),
    Section("Keys", "keys:index", "keys:"),
    Section("Experiments", "experiments:index", "experiments:"),
    Section("Usage", "usage:index", "usage:"),
    Section("Judges", "judges:index", "judges:"),
]


@dataclass(frozen=True)
class NavLink:
    label: str
    url: str
    active: bool


def nav_links(
    request: HttpRequest, workspace: Workspace, membership: Membership | None
) -> list[NavLink]:
    match = getattr(request, "resolver_match", None)
    view_name = match.view_name if match else ""
    on_this_workspace = getattr(request, "workspace", None) == workspace
    links = []
    for section in SECTIONS:
        if membership is not None and not membership.has_role(section.min_role):
            continue
        url = reverse(section.url_name, kwargs={"ws": workspace.slug})
        active = on_this_workspace and view_name.startswith(section.active_prefix)
        links.append(NavLink(section.label, url, active))
    return links
