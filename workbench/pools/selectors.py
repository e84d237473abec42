"""Reads about pools, scoped to a user in a workspace."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404

from workbench.accounts.models import Membership, User, Workspace
from workbench.keys.models import Credential
from workbench.pools.models import Pool, PoolMember


def pools_for(user: User, workspace: Workspace) -> QuerySet[Pool]:
    """The workspace's pools for one of its members; none for anyone else."""
    if (
        not user.is_authenticated
        or not Membership.objects.filter(user=user, workspace=workspace).exists()
    ):
        return Pool.objects.none()
    return (
        Pool.objects.filter(workspace=workspace)
        .select_related("judge_credential")
        .prefetch_related(
            Prefetch(
                "members",
                queryset=PoolMember.objects.select_related("credential").order_by("position"),
            )
        )
        .annotate(member_count=Count("members"))
        .order_by("name", "id")
    )


def pool_get(user: User, workspace: Workspace, slug: str) -> Pool:
    try:
        return pools_for(user, workspace).get(slug=slug)
    except Pool.DoesNotExist:
        raise Http404 from None


def pools_using_credential(credential: Credential) -> list[Pool]:
    """Pools whose members or judge use the credential (all in its workspace)."""
    return list(
        Pool.objects.filter(workspace_id=credential.workspace_id)
        .filter(Q(members__credential=credential) | Q(judge_credential=credential))
        .distinct()
        .order_by("name")
    )
