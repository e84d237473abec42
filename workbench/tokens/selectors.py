"""Reads about API tokens, scoped to one member of one workspace."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from workbench.accounts.models import Membership, Role
from workbench.tokens.models import ApiToken


def tokens_visible_to(membership: Membership) -> QuerySet[ApiToken]:
    """Everyone sees their own tokens; admins see every member's (to revoke a leaked one)."""
    tokens = ApiToken.objects.filter(workspace_id=membership.workspace_id).select_related("user")
    if not membership.has_role(Role.ADMIN):
        tokens = tokens.filter(user_id=membership.user_id)
    return tokens.order_by("revoked_at", "-created_at", "-id")


def token_get(membership: Membership, pk: int) -> ApiToken:
    try:
        return tokens_visible_to(membership).get(pk=pk)
    except ApiToken.DoesNotExist:
        raise Http404 from None
