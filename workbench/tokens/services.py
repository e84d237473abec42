"""Writes about API tokens: create (the secret is returned once), revoke, authenticate."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.lib.errors import ServiceError
from workbench.tokens.models import ApiToken

TOKEN_PREFIX = "fw_"
PREFIX_CHARS = 11  # "fw_" + 8 random characters: enough to tell tokens apart, useless to guess
# last_used_at is a hint for people, not an audit log: one write a minute per token at most.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@transaction.atomic
def token_create(
    *, workspace: Workspace, user: User, name: str, rate_per_minute: int | None = None
) -> tuple[ApiToken, str]:
    """A new token for ``user`` in ``workspace``; the raw secret is returned here only."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("Give the token a name (what will use it?).", field="name")
    if len(name) > 80:
        raise ServiceError("Keep the name under 80 characters.", field="name")
    if not Membership.objects.filter(workspace=workspace, user=user).exists():
        raise ServiceError("Only members of the workspace can have tokens for it.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(
        workspace=workspace,
        user=user,
        name=name,
        prefix=raw[:PREFIX_CHARS],
        digest=token_digest(raw),
    )
    if rate_per_minute is not None:
        token.rate_per_minute = rate_per_minute
    token.save()
    return token, raw


def token_can_revoke(token: ApiToken, user: User, membership: Membership) -> bool:
    return token.user_id == user.pk or membership.has_role(Role.ADMIN)


@transaction.atomic
def token_revoke(*, token: ApiToken, user: User, membership: Membership) -> ApiToken:
    """Revoke at once: the next request with it gets 401. Its owner or an admin may."""
    if not token_can_revoke(token, user, membership):
        raise ServiceError("Only its owner or a workspace admin can revoke this token.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def token_authenticate(raw: str) -> ApiToken | None:
    """The active token ``raw`` is, with its user and workspace, or None.

    The token's user must still be a member of its workspace: leaving it ends the token's use.
    """
    raw = (raw or "").strip()
    if not raw.startswith(TOKEN_PREFIX) or len(raw) < PREFIX_CHARS + 8:
        return None
    digest = token_digest(raw)
    found = None
    rows = ApiToken.objects.select_related("user", "workspace").filter(
        prefix=raw[:PREFIX_CHARS], revoked_at__isnull=True
    )
    for candidate in rows:
        if hmac.compare_digest(candidate.digest, digest):
            found = candidate
    if found is None or not found.user.is_active:
        return None
    if not Membership.objects.filter(
        workspace_id=found.workspace_id, user_id=found.user_id
    ).exists():
        return None
    now = timezone.now()
    if found.last_used_at is None or now - found.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
        found.last_used_at = now
    return found
