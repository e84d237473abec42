"""Who may do what with a credential. One place, used by services, views and the API.

- see and use: a personal credential only its owner; a workspace credential every member;
- read the keys back: nobody, ever (there is no code path that returns them);
- add a personal credential: members and up; a workspace credential: admins and up;
- edit or delete: a personal credential its owner; a workspace credential admins and up;
- test it, refresh its catalog, add models by hand: whoever may use it, viewers excepted.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404

from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.keys.models import Credential, Scope


def membership(user: User, workspace: Workspace) -> Membership:
    try:
        return Membership.objects.get(user=user, workspace=workspace)
    except Membership.DoesNotExist:
        raise Http404 from None


def can_see(user: User, credential: Credential) -> bool:
    if credential.scope == Scope.PERSONAL:
        return (
            credential.owner_id == user.pk
            and Membership.objects.filter(user=user, workspace_id=credential.workspace_id).exists()
        )
    return Membership.objects.filter(user=user, workspace_id=credential.workspace_id).exists()


def ensure_can_create(user: User, workspace: Workspace, scope: str) -> None:
    needed = Role.ADMIN if scope == Scope.WORKSPACE else Role.MEMBER
    if not membership(user, workspace).has_role(needed):
        raise PermissionDenied(
            "Only admins and owners may add workspace credentials."
            if scope == Scope.WORKSPACE
            else "Viewers cannot add credentials."
        )


def can_manage(user: User, credential: Credential, role: Membership | None = None) -> bool:
    if not can_see(user, credential):
        return False
    if credential.scope == Scope.PERSONAL:
        return True
    role = role or membership(user, credential.workspace)
    return role.has_role(Role.ADMIN)


def ensure_can_manage(user: User, credential: Credential) -> None:
    if not can_see(user, credential):
        raise Http404
    if not can_manage(user, credential):
        raise PermissionDenied("Only admins and owners may change workspace credentials.")


def can_use(user: User, credential: Credential, role: Membership | None = None) -> bool:
    if not can_see(user, credential):
        return False
    role = role or membership(user, credential.workspace)
    return role.has_role(Role.MEMBER)


def ensure_can_use(user: User, credential: Credential) -> None:
    if not can_see(user, credential):
        raise Http404
    if not can_use(user, credential):
        raise PermissionDenied("Viewers cannot use credentials.")
