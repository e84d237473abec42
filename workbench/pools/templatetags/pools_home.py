"""The workspace home's "Pools" card (the home page belongs to accounts; the card to us)."""

from __future__ import annotations

from typing import Any

from django import template

from workbench.accounts.models import Membership, User, Workspace
from workbench.pools.selectors import pools_for

register = template.Library()

SHOWN = 6


@register.inclusion_tag("pools/partials/home_card.html")
def workspace_pools(
    workspace: Workspace, user: User, membership: Membership | None
) -> dict[str, Any]:
    pools = pools_for(user, workspace)
    return {
        "workspace": workspace,
        "pools": list(pools[:SHOWN]),
        "more": max(0, pools.count() - SHOWN),
        "can_edit": membership is not None and membership.can_edit,
    }
