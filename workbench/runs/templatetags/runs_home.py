"""The workspace home's "Recent runs" card (the home page belongs to accounts; the card to us)."""

from __future__ import annotations

from typing import Any

from django import template

from workbench.accounts.models import Membership, Workspace
from workbench.runs.history import RunFilters, runs_filtered

register = template.Library()

RECENT = 5


@register.inclusion_tag("runs/partials/recent.html")
def recent_runs(workspace: Workspace, membership: Membership | None) -> dict[str, Any]:
    return {
        "workspace": workspace,
        "runs": list(runs_filtered(workspace, RunFilters())[:RECENT]),
        "can_edit": membership is not None and membership.can_edit,
    }
