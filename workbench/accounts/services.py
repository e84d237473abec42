"""Writes about people, workspaces, memberships and invitations.

Every function checks the rules of the domain itself (who may do what to whom) and raises
``ServiceError`` with a message for the user when one is broken. The views' access decorator
only keeps people out of pages; the rules live here so the REST API gets them too.
"""

from __future__ import annotations

import zoneinfo

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import slugify

from workbench.accounts.models import ROLE_RANK, Invitation, Membership, Role, User, Workspace
from workbench.accounts.selectors import invitation_problem
from workbench.lib.errors import ServiceError

_SLUG_BASE_MAX = 40  # leaves room for a "-123" suffix within the 50 characters of the column


# --- helpers -----------------------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:_SLUG_BASE_MAX].strip("-") or "workspace"
    slug, n = base, 2
    while Workspace.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ServiceError("Give the workspace a name.", field="name", code="name_required")
    if len(name) > 80:
        raise ServiceError("Keep the name to 80 characters.", field="name", code="name_too_long")
    return name


def _clean_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ServiceError(f"{role!r} is not a role.", field="role", code="bad_role") from None


def _clean_time_zone(time_zone: str) -> str:
    if time_zone not in zoneinfo.available_timezones():
        raise ServiceError(
            f"{time_zone!r} is not a time zone we know.", field="time_zone", code="bad_time_zone"
        )
    return time_zone


def _membership_of(user: User, workspace: Workspace, *, lock: bool = False) -> Membership:
    query = Membership.objects.select_for_update() if lock else Membership.objects
    try:
        return query.get(user=user, workspace=workspace)
    except Membership.DoesNotExist:
        raise ServiceError(
            f"You are not a member of {workspace.name}.", code="not_member"
        ) from None


def _require(actor: Membership, minimum: Role, doing: str) -> None:
    if ROLE_RANK[Role(actor.role)] < ROLE_RANK[minimum]:
        raise ServiceError(
            f"Only {minimum.label.lower()}s and above can {doing}.", code="forbidden"
        )


def _is_last_owner(membership: Membership) -> bool:
    if membership.role != Role.OWNER:
        return False
    # Lock the owners' rows so two demotions at once cannot both see "another owner is left".
    owners = Membership.objects.select_for_update().filter(
        workspace_id=membership.workspace_id, role=Role.OWNER
    )
    return len(owners) <= 1


def _forget_workspace(user: User, workspace: Workspace) -> None:
    if user.last_workspace_id == workspace.id:
        user.last_workspace = None
        user.save(update_fields=["last_workspace"])


# --- people ------------------------------------------------------------------------------------


@transaction.atomic
def user_signup(*, username: str, email: str, password: str, time_zone: str = "UTC") -> User:
    """Create an account and its personal workspace, where the new user is the owner."""
    username = username.strip()
    email = User.objects.normalize_email(email.strip())
    if not username:
        raise ServiceError("Choose a username.", field="username", code="username_required")
    if User.objects.filter(username__iexact=username).exists():
        raise ServiceError("That username is taken.", field="username", code="username_taken")
    if User.objects.filter(email__iexact=email).exists():
        raise ServiceError(
            "An account with that email already exists. Log in, or reset its password.",
            field="email",
            code="email_taken",
        )
    user = User(username=username, email=email, time_zone=_clean_time_zone(time_zone))
    try:
        validate_password(password, user)
    except ValidationError as err:
        raise ServiceError(" ".join(err.messages), field="password", code="weak_password") from None
    user.set_password(password)
    try:
        # A savepoint, so a concurrent sign-up with the same name fails cleanly here.
        with transaction.atomic():
            user.save()
    except IntegrityError:
        raise ServiceError(
            "That username or email was just taken.", field="username", code="username_taken"
        ) from None
    workspace_create(owner=user, name=username, personal=True)
    return user


@transaction.atomic
def user_update(*, user: User, email: str, time_zone: str) -> User:
    email = User.objects.normalize_email(email.strip())
    if User.objects.filter(email__iexact=email).exclude(pk=user.pk).exists():
        raise ServiceError("Another account uses that email.", field="email", code="email_taken")
    user.email = email
    user.time_zone = _clean_time_zone(time_zone)
    user.save(update_fields=["email", "time_zone"])
    return user


# --- workspaces --------------------------------------------------------------------------------


@transaction.atomic
def workspace_create(*, owner: User, name: str, personal: bool = False) -> Workspace:
    workspace = Workspace.objects.create(
        name=_clean_name(name), slug=_unique_slug(name), personal=personal
    )
    Membership.objects.create(workspace=workspace, user=owner, role=Role.OWNER)
    owner.last_workspace = workspace
    owner.save(update_fields=["last_workspace"])
    return workspace


@transaction.atomic
def workspace_update(
    *, workspace: Workspace, actor: User, name: str, blind_mode: bool
) -> Workspace:
    """Rename and set the options; the slug stays, so links already shared keep working."""
    _require(_membership_of(actor, workspace), Role.ADMIN, "change the workspace's settings")
    workspace.name = _clean_name(name)
    workspace.blind_mode = blind_mode
    workspace.save(update_fields=["name", "blind_mode"])
    return workspace


@transaction.atomic
def workspace_delete(*, workspace: Workspace, actor: User) -> None:
    """Delete a team workspace and everything in it.

    Personal workspaces stay: sign-up promises each person one place that is theirs.
    """
    _require(_membership_of(actor, workspace), Role.OWNER, "delete a workspace")
    if workspace.personal:
        raise ServiceError("A personal workspace cannot be deleted.", code="personal_workspace")
    workspace.delete()


# --- invitations -------------------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, workspace: Workspace, actor: User, role: str, email: str = ""
) -> Invitation:
    actor_membership = _membership_of(actor, workspace)
    _require(actor_membership, Role.ADMIN, "invite people")
    role = _clean_role(role)
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise ServiceError("Only owners can invite owners.", field="role", code="owner_only")
    return Invitation.objects.create(
        workspace=workspace, role=role, email=email.strip(), created_by=actor
    )


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    _require(_membership_of(actor, invitation.workspace), Role.ADMIN, "revoke invitations")
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise ServiceError("That invitation has already been used.", code="used")
    invitation.revoked = True
    invitation.save(update_fields=["revoked"])
    return invitation


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user: User) -> Membership:
    """Join the invitation's workspace with its role; each link works once."""
    # Locked, so the same link clicked twice at once makes one membership, not two.
    invitation = (
        Invitation.objects.select_for_update().select_related("workspace").get(pk=invitation.pk)
    )
    problem = invitation_problem(invitation)
    if problem is not None:
        code, message = problem
        raise ServiceError(message, code=code)
    workspace = invitation.workspace
    if Membership.objects.filter(workspace=workspace, user=user).exists():
        # The link stays unused, so it can still be passed on to whom it was meant for.
        raise ServiceError(f"You are already a member of {workspace.name}.", code="already_member")
    membership = Membership.objects.create(workspace=workspace, user=user, role=invitation.role)
    invitation.accepted_by = user
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_by", "accepted_at"])
    user.last_workspace = workspace
    user.save(update_fields=["last_workspace"])
    return membership


# --- memberships -------------------------------------------------------------------------------


def _last_owner_error(membership: Membership, doing: str) -> ServiceError:
    return ServiceError(
        f"{membership.user.username} is the last owner of {membership.workspace.name} and cannot "
        f"{doing}. Make someone else an owner first.",
        code="last_owner",
    )


@transaction.atomic
def membership_change_role(*, membership: Membership, actor: User, role: str) -> Membership:
    """Admins and owners change roles; only owners make or unmake owners."""
    actor_membership = _membership_of(actor, membership.workspace)
    _require(actor_membership, Role.ADMIN, "change roles")
    new_role = _clean_role(role)
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "workspace")
        .get(pk=membership.pk)
    )
    if Role.OWNER in (membership.role, new_role) and actor_membership.role != Role.OWNER:
        raise ServiceError("Only owners can make or unmake owners.", code="owner_only")
    if membership.role == new_role:
        return membership
    if new_role != Role.OWNER and _is_last_owner(membership):
        raise _last_owner_error(membership, "be demoted")
    membership.role = new_role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> None:
    """Admins and owners remove members; only owners remove owners."""
    actor_membership = _membership_of(actor, membership.workspace)
    _require(actor_membership, Role.ADMIN, "remove members")
    membership = (
        Membership.objects.select_for_update()
        .select_related("user", "workspace")
        .get(pk=membership.pk)
    )
    if membership.role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise ServiceError("Only owners can remove owners.", code="owner_only")
    if _is_last_owner(membership):
        raise _last_owner_error(membership, "be removed")
    membership.delete()
    _forget_workspace(membership.user, membership.workspace)


@transaction.atomic
def membership_leave(*, workspace: Workspace, user: User) -> None:
    membership = _membership_of(user, workspace, lock=True)
    if _is_last_owner(membership):
        raise ServiceError(
            f"You are the last owner of {workspace.name}. Make someone else an owner"
            + ("" if workspace.personal else ", or delete the workspace,")
            + " before you leave.",
            code="last_owner",
        )
    membership.delete()
    _forget_workspace(user, workspace)
