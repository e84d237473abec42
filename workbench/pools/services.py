"""Writes about pools, and the frozen configuration a run keeps of the pool it used."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils.text import slugify

from fusion.results import spec_from_dict, spec_to_dict
from fusion.types import JudgeSpec, Member, RunSpec
from workbench.accounts.models import Membership, Role, User, Workspace
from workbench.keys.models import Credential
from workbench.lib.errors import ServiceError
from workbench.pools.inputs import (
    RESERVED_SLUGS,
    CleanPool,
    JudgeInput,
    MemberInput,
    PoolInput,
    PoolValidationError,
    validate_pool,
)
from workbench.pools.models import Mode, Pool, PoolMember

FROZEN_VERSION = 1
MISSING = "cred:missing"


def _ensure_role(user: User, workspace: Workspace, minimum: str) -> None:
    membership = Membership.objects.filter(user=user, workspace=workspace).first()
    if membership is None or not membership.has_role(minimum):
        raise PermissionDenied(f"This needs the {minimum} role or higher.")


def _free_slug(workspace: Workspace, wanted: str, *, exclude: int | None = None) -> str:
    base = (wanted or "pool")[:54].strip("-") or "pool"
    taken = set(
        Pool.objects.filter(workspace=workspace).exclude(pk=exclude).values_list("slug", flat=True)
    )
    taken |= RESERVED_SLUGS
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def _slug_for(workspace: Workspace, clean: CleanPool, *, pool: Pool | None) -> str:
    if clean.slug:
        clash = Pool.objects.filter(workspace=workspace, slug=clean.slug)
        if pool is not None:
            clash = clash.exclude(pk=pool.pk)
        if clash.exists():
            raise PoolValidationError({"slug": ["Another pool of this workspace has this slug."]})
        return clean.slug
    if pool is not None:
        return pool.slug
    return _free_slug(workspace, slugify(clean.name))


def _apply(pool: Pool, clean: CleanPool) -> None:
    pool.name = clean.name
    pool.description = clean.description
    pool.mode = clean.mode
    pool.rounds = clean.rounds
    pool.debate_judge = clean.debate_judge
    pool.system_prompt = clean.system_prompt
    pool.quorum = clean.quorum
    pool.deadline_s = clean.deadline_s
    pool.budget_usd = clean.budget_usd
    pool.blind_mode = clean.blind_mode
    judge = clean.judge
    pool.judge_credential = judge.credential if judge else None
    pool.judge_model = judge.model if judge else ""
    pool.judge_model_custom = judge.custom_model if judge else False
    pool.judge_instructions = judge.instructions if judge else ""
    pool.judge_temperature = judge.temperature if judge else 0.0
    pool.judge_max_tokens = judge.max_tokens if judge else None
    pool.judge_swap_twice = judge.swap_twice if judge else False


def _replace_members(pool: Pool, clean: CleanPool) -> None:
    # Seats have no identity of their own (runs keep frozen copies), so replacing is exact.
    pool.members.all().delete()
    PoolMember.objects.bulk_create(
        PoolMember(
            pool=pool,
            position=i,
            credential=m.credential,
            model=m.model,
            model_custom=m.custom_model,
            system_prompt=m.system_prompt,
            temperature=m.temperature,
            max_tokens=m.max_tokens,
            fallback_models=m.fallback_models,
        )
        for i, m in enumerate(clean.members)
    )


@transaction.atomic
def pool_create(*, workspace: Workspace, user: User, data: PoolInput) -> Pool:
    _ensure_role(user, workspace, Role.MEMBER)
    clean = validate_pool(data, user=user, workspace=workspace)
    pool = Pool(workspace=workspace, created_by=user)
    _apply(pool, clean)
    pool.slug = _slug_for(workspace, clean, pool=None)
    pool.save()
    _replace_members(pool, clean)
    return pool


@transaction.atomic
def pool_update(*, pool: Pool, user: User, data: PoolInput) -> Pool:
    _ensure_role(user, pool.workspace, Role.MEMBER)
    clean = validate_pool(data, user=user, workspace=pool.workspace)
    _apply(pool, clean)
    pool.slug = _slug_for(pool.workspace, clean, pool=pool)
    pool.save()
    _replace_members(pool, clean)
    return pool


@transaction.atomic
def pool_clone(*, pool: Pool, user: User, name: str | None = None) -> Pool:
    """An exact copy under a new name and slug; it is validated when next edited or run."""
    _ensure_role(user, pool.workspace, Role.MEMBER)
    members = list(pool.members.all())
    copy = Pool.objects.get(pk=pool.pk)
    copy.pk = None
    copy.name = (name or f"{pool.name} (copy)")[:80]
    copy.slug = _free_slug(pool.workspace, slugify(copy.name))
    copy.created_by = user
    copy.save()
    for member in members:
        member.pk = None
        member.pool = copy
    PoolMember.objects.bulk_create(members)
    return copy


@transaction.atomic
def pool_delete(*, pool: Pool, user: User) -> None:
    """Delete a pool; runs keep their frozen copy. Its creator or an admin may delete it."""
    membership = Membership.objects.filter(user=user, workspace=pool.workspace).first()
    if membership is None or not (
        membership.has_role(Role.ADMIN)
        or (pool.created_by_id == user.pk and membership.has_role(Role.MEMBER))
    ):
        raise PermissionDenied("Only the pool's creator or an admin may delete it.")
    pool.delete()


# --- the pool as input again (editing, API PATCH, checks) ---------------------------------------


def pool_input_of(pool: Pool) -> PoolInput:
    return PoolInput(
        name=pool.name,
        slug=pool.slug,
        description=pool.description,
        mode=pool.mode,
        rounds=pool.rounds,
        debate_judge=pool.debate_judge,
        system_prompt=pool.system_prompt,
        quorum=pool.quorum,
        deadline_s=pool.deadline_s,
        budget_usd=pool.budget_usd,
        blind_mode=pool.blind_mode,
        members=[
            MemberInput(
                credential_id=m.credential_id,
                model=m.model,
                system_prompt=m.system_prompt,
                temperature=m.temperature,
                max_tokens=m.max_tokens,
                fallback_models=list(m.fallback_models or []),
                custom_model=m.model_custom,
            )
            for m in pool.members.all()
        ],
        judge=JudgeInput(
            credential_id=pool.judge_credential_id,
            model=pool.judge_model,
            instructions=pool.judge_instructions,
            temperature=pool.judge_temperature,
            max_tokens=pool.judge_max_tokens,
            swap_twice=pool.judge_swap_twice,
            custom_model=pool.judge_model_custom,
        )
        if pool.has_judge or pool.judge_credential_id
        else None,
    )


def pool_validate_for(pool: Pool, user: User) -> None:
    """Raise ``PoolValidationError`` unless ``user`` may run the pool as it stands now
    (credentials deleted since, another member's personal credential, models gone …)."""
    validate_pool(pool_input_of(pool), user=user, workspace=pool.workspace)


def pool_problems(pool: Pool, user: User) -> dict[str, list[str]]:
    try:
        pool_validate_for(pool, user)
    except PoolValidationError as err:
        return err.errors
    return {}


# --- the frozen copy a run keeps ----------------------------------------------------------------


def member_id(position: int) -> str:
    return f"m{position + 1}"


def member_labels(models: list[str]) -> list[str]:
    """Display names; a model that repeats (self-fusion) is numbered: "gpt-4o #2"."""
    totals: dict[str, int] = {}
    for model in models:
        totals[model] = totals.get(model, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for model in models:
        seen[model] = seen.get(model, 0) + 1
        labels.append(f"{model} #{seen[model]}" if totals[model] > 1 else model)
    return labels


def _provider_info(credential: Credential) -> dict[str, Any]:
    return {
        "credential_id": credential.pk,
        "label": credential.label,
        "kind": credential.provider,
        "kind_label": credential.kind.label,
        "scope": credential.scope,
    }


@dataclass(frozen=True)
class FrozenSeat:
    """One member or the judge, as frozen into a run: saved pools and unsaved (ad hoc or
    experiment) configurations alike become these, so both freeze the same way."""

    credential: Credential | None
    model: str
    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    fallback_models: tuple[str, ...] = ()
    instructions: str = ""  # the judge's
    swap_twice: bool = False  # the judge's


def config_freeze(
    *,
    name: str,
    pool: Pool | None,
    mode: str,
    members: list[FrozenSeat],
    judge: FrozenSeat | None,
    system_prompt: str = "",
    rounds: int = 1,
    quorum: int | None = None,
    deadline_s: float | int | None = None,
    budget_usd: Decimal | None = None,
    debate_judge: str = "merge",
    strict: bool = True,
) -> dict[str, Any]:
    """A JSON-safe configuration for a run to keep for good (see ``pool_freeze``)."""
    providers: dict[str, dict[str, Any]] = {}

    def reference(seat: FrozenSeat, what: str, field: str) -> str:
        if seat.credential is None:
            if strict:
                raise ServiceError(
                    f"{what} of {name} has no credential (it was deleted).",
                    field=field,
                    code="missing_credential",
                )
            return MISSING
        providers[seat.credential.reference] = _provider_info(seat.credential)
        return seat.credential.reference

    spec_members = [
        Member(
            id=member_id(position),
            provider=reference(seat, f"Member {position + 1}", "members"),
            model=seat.model,
            system_prompt=seat.system_prompt or None,
            temperature=seat.temperature,
            max_tokens=seat.max_tokens,
            fallback_models=tuple(seat.fallback_models),
        )
        for position, seat in enumerate(members)
    ]
    judge_spec = None
    if judge is not None:
        judge_spec = JudgeSpec(
            provider=reference(judge, "The judge", "judge"),
            model=judge.model,
            instructions=judge.instructions or None,
            temperature=judge.temperature,
            max_tokens=judge.max_tokens,
            swap_twice=judge.swap_twice,
        )
    spec = RunSpec(
        mode=mode,  # type: ignore[arg-type]
        prompt="",
        members=tuple(spec_members),
        judge=judge_spec,
        system_prompt=system_prompt or None,
        rounds=rounds if mode == Mode.DEBATE else 1,
        quorum=quorum,
        deadline_s=float(deadline_s) if deadline_s is not None else None,
        budget_usd=budget_usd,
        debate_judge=debate_judge,  # type: ignore[arg-type]
    )
    spec_dict = spec_to_dict(spec)
    del spec_dict["prompt"]
    ids = [member_id(i) for i in range(len(members))]
    return {
        "version": FROZEN_VERSION,
        "pool": None
        if pool is None
        else {"id": pool.pk, "name": pool.name, "slug": pool.slug, "mode": pool.mode},
        "name": name,
        "spec": spec_dict,
        "providers": providers,
        "labels": dict(zip(ids, member_labels([seat.model for seat in members]), strict=True)),
    }


def pool_freeze(pool: Pool, *, strict: bool = True) -> dict[str, Any]:
    """A JSON-safe copy of the pool's configuration, for a run to keep for good.

    ``spec`` is ``fusion.results.spec_to_dict`` of the run spec without its prompt; members and
    the judge name their provider ``"cred:<id>"``, described under ``providers`` (label, kind)
    so history shows names even after the credential is deleted. ``labels`` maps member ids to
    display names. Raises ``ServiceError`` when a seat has lost its credential, unless
    ``strict`` is off (for estimates of a broken pool: the seat is named "cred:missing").
    """
    judge = judge_seat(pool, prefix="judge_") if pool.has_judge else None
    members = pool.members.select_related("credential")
    return seats_freeze(pool, pool=pool, members=members, judge=judge, strict=strict)


_MEMBER_FIELDS = ("credential", "model", "system_prompt", "temperature", "max_tokens")
_JUDGE_FIELDS = ("credential", "model", "instructions", "temperature", "max_tokens", "swap_twice")


def judge_seat(source: Any, *, prefix: str = "") -> FrozenSeat:
    """The judge's seat from a ``CleanJudge``, or from a ``Pool`` with ``prefix="judge_"``."""
    return FrozenSeat(**{f: getattr(source, prefix + f) for f in _JUDGE_FIELDS})


def seats_freeze(
    source: Any,
    *,
    pool: Pool | None,
    members: Iterable[Any],
    judge: FrozenSeat | None,
    strict: bool = True,
) -> dict[str, Any]:
    """``config_freeze`` of a saved ``Pool`` or a validated, unsaved ``CleanPool``: the two
    have the same settings, and their members (``PoolMember``, ``CleanMember``) the same
    fields, so one mapping serves both."""
    seats = [
        FrozenSeat(
            **{f: getattr(m, f) for f in _MEMBER_FIELDS},
            fallback_models=tuple(m.fallback_models or ()),
        )
        for m in members
    ]
    return config_freeze(
        name=source.name,
        pool=pool,
        mode=source.mode,
        members=seats,
        judge=judge,
        system_prompt=source.system_prompt,
        rounds=source.rounds,
        quorum=source.quorum,
        deadline_s=source.deadline_s,
        budget_usd=source.budget_usd,
        debate_judge=source.debate_judge,
        strict=strict,
    )


def pool_spec(
    frozen: Mapping[str, Any], *, prompt: str, system_prompt: str | None = None
) -> RunSpec:
    """The engine's ``RunSpec`` from a frozen pool and a prompt."""
    data = {**frozen["spec"], "prompt": prompt}
    if system_prompt:
        data["system_prompt"] = system_prompt
    return spec_from_dict(data)
