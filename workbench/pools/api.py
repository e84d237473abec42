"""REST routes for pools, members and judge inline."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja import Field, Router, Schema
from pydantic import ValidationInfo, field_validator

from workbench.accounts.models import Role
from workbench.api.access import api_membership, api_user
from workbench.pools import selectors, services
from workbench.pools.estimate import pool_estimate
from workbench.pools.inputs import MAX_MEMBERS, JudgeInput, MemberInput, PoolInput
from workbench.pools.models import Pool

router = Router(tags=["pools"])

ModeName = Literal["best_of", "merge", "debate"]
DebateJudgeName = Literal["best_of", "merge"]


class MemberIn(Schema):
    credential_id: int | None
    model: str = Field(max_length=200)
    system_prompt: str = ""
    temperature: float | None = None
    max_tokens: int | None = None
    fallback_models: list[str] = Field(default_factory=list)
    custom_model: bool = Field(False, description="The model may be missing from the catalog.")


class MemberOut(MemberIn):
    id: str
    label: str
    credential_label: str | None
    provider: str | None


class JudgeIn(Schema):
    credential_id: int | None
    model: str = Field(max_length=200)
    instructions: str = ""
    temperature: float | None = 0.0
    max_tokens: int | None = None
    swap_twice: bool = False
    custom_model: bool = False


class JudgeOut(JudgeIn):
    credential_label: str | None
    provider: str | None


class PoolIn(Schema):
    name: str = Field(max_length=80)
    slug: str = Field("", max_length=60)
    description: str = ""
    mode: ModeName = "best_of"
    rounds: int = Field(1, description="Debate only: revision rounds after the first answers.")
    debate_judge: DebateJudgeName = "merge"
    system_prompt: str = ""
    quorum: int | None = None
    deadline_s: int | None = None
    budget_usd: Decimal | None = None
    blind_mode: bool = Field(False, description="Hide model names until each person picked.")
    members: list[MemberIn] = Field(max_length=MAX_MEMBERS * 4)
    judge: JudgeIn | None = None


class PoolPatch(Schema):
    """Only the fields given change; ``members`` and ``judge``, when given, replace the old."""

    name: str | None = Field(None, max_length=80)
    slug: str | None = Field(None, max_length=60)
    description: str | None = None
    mode: ModeName | None = None
    rounds: int | None = None
    debate_judge: DebateJudgeName | None = None
    system_prompt: str | None = None
    quorum: int | None = None
    deadline_s: int | None = None
    budget_usd: Decimal | None = None
    blind_mode: bool | None = None
    members: list[MemberIn] | None = Field(None, max_length=MAX_MEMBERS * 4)
    judge: JudgeIn | None = None

    # None here means "not given"; a null sent for a field the pool must have is refused by
    # name (422), not copied into the pool. ``quorum``, ``deadline_s``, ``budget_usd`` and
    # ``judge`` may be null: that clears them.
    @field_validator(
        "name", "slug", "description", "mode", "rounds", "debate_judge", "system_prompt",
        "blind_mode", "members", mode="before",
    )  # fmt: skip
    @classmethod
    def _given_not_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None:
            raise ValueError(f"{info.field_name} cannot be null; leave it out to keep it.")
        return value


class EstimateLineOut(Schema):
    label: str
    role: str
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal | None


class EstimateOut(Schema):
    total_usd: Decimal | None = Field(description="None when a member or the judge is unpriced.")
    priced_usd: Decimal
    unpriced: list[str]
    prompt_tokens: int
    lines: list[EstimateLineOut]


class PoolOut(Schema):
    id: int
    name: str
    slug: str
    description: str
    mode: str
    rounds: int
    debate_judge: str
    system_prompt: str
    quorum: int | None
    deadline_s: int | None
    budget_usd: Decimal | None
    blind_mode: bool
    members: list[MemberOut]
    judge: JudgeOut | None
    estimate: EstimateOut
    problems: dict[str, list[str]]
    created_at: datetime
    updated_at: datetime


def _input(payload: PoolIn) -> PoolInput:
    return PoolInput(
        name=payload.name,
        slug=payload.slug,
        description=payload.description,
        mode=payload.mode,
        rounds=payload.rounds,
        debate_judge=payload.debate_judge,
        system_prompt=payload.system_prompt,
        quorum=payload.quorum,
        deadline_s=payload.deadline_s,
        budget_usd=payload.budget_usd,
        blind_mode=payload.blind_mode,
        members=[MemberInput(**m.model_dump()) for m in payload.members],
        judge=JudgeInput(**payload.judge.model_dump()) if payload.judge else None,
    )


def _out(request: HttpRequest, pool: Pool) -> PoolOut:
    members = list(pool.members.select_related("credential"))
    labels = services.member_labels([m.model for m in members])
    estimate = pool_estimate(pool)
    judge = pool.judge_credential
    return PoolOut(
        id=pool.pk,
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
            MemberOut(
                id=services.member_id(i),
                label=label,
                credential_id=m.credential_id,
                credential_label=m.credential.label if m.credential else None,
                provider=m.credential.provider if m.credential else None,
                model=m.model,
                system_prompt=m.system_prompt,
                temperature=m.temperature,
                max_tokens=m.max_tokens,
                fallback_models=list(m.fallback_models or []),
                custom_model=m.model_custom,
            )
            for i, (m, label) in enumerate(zip(members, labels, strict=True))
        ],
        judge=JudgeOut(
            credential_id=pool.judge_credential_id,
            credential_label=judge.label if judge else None,
            provider=judge.provider if judge else None,
            model=pool.judge_model,
            instructions=pool.judge_instructions,
            temperature=pool.judge_temperature,
            max_tokens=pool.judge_max_tokens,
            swap_twice=pool.judge_swap_twice,
            custom_model=pool.judge_model_custom,
        )
        if pool.has_judge
        else None,
        estimate=EstimateOut(
            total_usd=estimate.total_usd,
            priced_usd=estimate.priced_usd,
            unpriced=[*estimate.unpriced_members, *(["judge"] if estimate.judge_unpriced else [])],
            prompt_tokens=estimate.prompt_tokens,
            lines=[
                EstimateLineOut(
                    label=line.label,
                    role=line.role,
                    model=line.model,
                    calls=line.calls,
                    input_tokens=line.input_tokens,
                    output_tokens=line.output_tokens,
                    cost_usd=line.cost,
                )
                for line in estimate.lines
            ],
        ),
        problems=services.pool_problems(pool, api_user(request)),
        created_at=pool.created_at,
        updated_at=pool.updated_at,
    )


def _get(request: HttpRequest, ws: str, slug: str, min_role: str) -> Pool:
    """The pool, 404 for outsiders and unknown slugs, 403 when the role is too low."""
    membership = api_membership(request, ws)
    pool = selectors.pool_get(api_user(request), membership.workspace, slug)
    if not membership.has_role(min_role):
        raise PermissionDenied(f"This needs the {min_role} role or higher.")
    return pool


@router.get("/workspaces/{ws}/pools", response=list[PoolOut])
def list_pools(request: HttpRequest, ws: str) -> list[PoolOut]:
    membership = api_membership(request, ws)
    return [_out(request, p) for p in selectors.pools_for(api_user(request), membership.workspace)]


@router.post("/workspaces/{ws}/pools", response={201: PoolOut})
def create_pool(request: HttpRequest, ws: str, payload: PoolIn) -> tuple[int, PoolOut]:
    membership = api_membership(request, ws, min_role=Role.MEMBER)
    pool = services.pool_create(
        workspace=membership.workspace, user=api_user(request), data=_input(payload)
    )
    return 201, _out(request, pool)


@router.get("/workspaces/{ws}/pools/{slug}", response=PoolOut)
def read_pool(request: HttpRequest, ws: str, slug: str) -> PoolOut:
    return _out(request, _get(request, ws, slug, Role.VIEWER))


@router.put("/workspaces/{ws}/pools/{slug}", response=PoolOut)
def replace_pool(request: HttpRequest, ws: str, slug: str, payload: PoolIn) -> PoolOut:
    pool = _get(request, ws, slug, Role.MEMBER)
    data = _input(payload)
    data.slug = data.slug or pool.slug
    return _out(request, services.pool_update(pool=pool, user=api_user(request), data=data))


@router.patch("/workspaces/{ws}/pools/{slug}", response=PoolOut)
def update_pool(request: HttpRequest, ws: str, slug: str, payload: PoolPatch) -> PoolOut:
    pool = _get(request, ws, slug, Role.MEMBER)
    data = services.pool_input_of(pool)
    given: dict[str, Any] = payload.model_dump(exclude_unset=True)
    for name, value in given.items():
        if name == "members":
            data.members = [MemberInput(**m) for m in value]
        elif name == "judge":
            data.judge = JudgeInput(**value) if value else None
        else:
            setattr(data, name, value)
    return _out(request, services.pool_update(pool=pool, user=api_user(request), data=data))


@router.delete("/workspaces/{ws}/pools/{slug}", response={204: None})
def delete_pool(request: HttpRequest, ws: str, slug: str) -> tuple[int, None]:
    pool = _get(request, ws, slug, Role.MEMBER)
    services.pool_delete(pool=pool, user=api_user(request))
    return 204, None


@router.post("/workspaces/{ws}/pools/{slug}/clone", response={201: PoolOut})
def clone_pool(request: HttpRequest, ws: str, slug: str) -> tuple[int, PoolOut]:
    pool = _get(request, ws, slug, Role.MEMBER)
    return 201, _out(request, services.pool_clone(pool=pool, user=api_user(request)))
