"""REST routes for runs: start one on a pool, read its full state, list, cancel, rerun.

Same rules as the pages: outsiders get 404, viewers read and get 403 on writes. Money is a
string (a Decimal, never a float); ``null`` where a cost is unknown ("unpriced").
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from math import ceil
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from workbench.accounts.models import Membership, Role
from workbench.api.access import api_membership, api_user
from workbench.lib.errors import ServiceError
from workbench.runs import services
from workbench.runs.display import decimal_or_none, provider_directory, run_state_now
from workbench.runs.engine_bridge import spec_dict_of
from workbench.runs.history import PAGE_SIZE, RunFilters, runs_filtered
from workbench.runs.launch import config_estimate, pool_by_ref, pool_config
from workbench.runs.models import Run, RunSource, RunStatus
from workbench.runs.selectors import run_in_workspace

router = Router(tags=["runs"])

MAX_PAGE_SIZE = 100


# --- schemas -----------------------------------------------------------------------------


class RunIn(Schema):
    pool: str = Field(description="The pool's slug or id.", max_length=60)
    prompt: str
    system_prompt: str = ""


class PoolRef(Schema):
    id: int | None
    slug: str | None
    name: str


class Totals(Schema):
    input_tokens: int
    output_tokens: int
    cost: str | None = Field(description="What the priced calls cost, in USD.")
    unpriced: bool = Field(description="Some call had no price: the cost is incomplete.")
    wall_ms: float | None


class RunOut(Schema):
    id: uuid.UUID
    url: str
    status: str
    error: str
    mode: str
    pool: PoolRef
    prompt: str
    system_prompt: str
    source: str
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    rerun_of: uuid.UUID | None
    winner: str | None = Field(description="The member id the judge picked (m1, m2 …).")
    winner_model: str | None
    estimated_cost: str | None
    totals: Totals


class CandidateOut(Schema):
    member: str
    label: str
    round: int
    status: str
    provider: str
    provider_kind: str
    simulated: bool
    model: str
    text: str
    error: str | None
    finish_reason: str | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost: str | None
    ttft_ms: float | None
    latency_ms: float | None


class JudgePassOut(Schema):
    part: str
    judge: str
    phase: str
    status: str
    model: str | None
    text: str


class CallOut(Schema):
    order: int
    call_id: str
    candidate: str
    round: int
    provider: str
    simulated: bool
    model: str
    key_label: str | None
    status: str
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost: str | None
    ttft_ms: float | None
    latency_ms: float | None
    attempts: int
    error: str | None


class CallTotals(Schema):
    calls: int
    input_tokens: int
    output_tokens: int
    cost: str
    unpriced: bool


class RunDetailOut(RunOut):
    seq: int = Field(description="The event seq this state covers (for /ws/runs/<id>/?after=).")
    fused_text: str
    candidates: list[CandidateOut]
    judge: list[JudgePassOut]
    verdict: dict[str, Any] | None
    calls: list[CallOut]
    call_totals: CallTotals


class RunPage(Schema):
    count: int
    page: int
    pages: int
    page_size: int
    results: list[RunOut]


class RunFiltersIn(Schema):
    pool: str | None = Field(None, description="A pool's slug or id.")
    model: str | None = None
    status: str | None = Field(None, description="queued, running, finished, failed, cancelled.")
    author: str | None = Field(None, description="A username.")
    date_from: date | None = None
    date_to: date | None = None
    q: str | None = Field(None, description="Words to find in the prompts.")
    page: int = Field(1, ge=1)
    page_size: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


# --- building responses --------------------------------------------------------------------


def _money(value: Any) -> str | None:
    """A Decimal as a plain string without the storage's trailing zeros ("0.00012")."""
    amount = decimal_or_none(value)
    return None if amount is None else format(amount.normalize(), "f")


def _out(request: HttpRequest, run: Run, *, winner_model: str | None = None) -> RunOut:
    pool = run.pool
    config = run.config or {}
    frozen_pool = config.get("pool") or {}
    return RunOut(
        id=run.pk,
        url=request.build_absolute_uri(f"/w/{run.workspace.slug}/runs/{run.pk}/"),
        status=run.status,
        error=run.error,
        mode=run.mode,
        pool=PoolRef(
            id=run.pool_id,
            slug=pool.slug if pool is not None else frozen_pool.get("slug"),
            name=run.pool_name or (pool.name if pool is not None else ""),
        ),
        prompt=run.prompt,
        system_prompt=run.system_prompt,
        source=run.source,
        created_by=run.created_by.username if run.created_by else None,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        rerun_of=run.rerun_of_id,
        winner=run.winner or None,
        winner_model=winner_model if winner_model is not None else _winner_model(run),
        estimated_cost=_money(run.estimated_cost),
        totals=Totals(
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cost=_money(run.total_cost),
            unpriced=run.cost_unpriced,
            wall_ms=run.wall_ms,
        ),
    )


def _winner_model(run: Run) -> str | None:
    if not run.winner:
        return None
    found = run.candidates.filter(member=run.winner).order_by("-round").first()
    return found.model if found else None


def _detail(request: HttpRequest, run: Run) -> RunDetailOut:
    seq, state = run_state_now(run)
    config = run.config or {}
    directory = provider_directory(config)
    labels = config.get("labels") or {}
    kinds = {c.key: c.provider_kind for c in run.candidates.all()}
    candidates: list[CandidateOut] = []
    judge: list[JudgePassOut] = []
    for part, data in state.get("parts", {}).items():
        if data.get("kind") == "judge":
            judge.append(
                JudgePassOut(
                    part=part,
                    judge=str(data.get("judge") or part.partition("/")[0]),
                    phase=str(data.get("phase") or part.partition("/")[2]),
                    status=str(data.get("status") or "done"),
                    model=data.get("model"),
                    text=str(data.get("text") or ""),
                )
            )
            continue
        usage = data.get("usage") or {}
        provider = directory.get(str(data.get("provider") or ""), {})
        kind = provider.get("kind") or kinds.get(part, "")
        member = str(data.get("candidate") or part.partition("/")[0])
        candidates.append(
            CandidateOut(
                member=member,
                label=str(labels.get(member) or data.get("model") or member),
                round=int(data.get("round") or 0),
                status=str(data.get("status") or "queued"),
                provider=provider.get("label") or str(data.get("provider") or ""),
                provider_kind=kind,
                simulated=kind == "simulated",
                model=str(data.get("model") or ""),
                text=str(data.get("text") or ""),
                error=data.get("error") or None,
                finish_reason=data.get("finish_reason") or None,
                input_tokens=int(usage.get("input_tokens") or 0),
                output_tokens=int(usage.get("output_tokens") or 0),
                tokens_estimated=bool(usage.get("estimated")),
                cost=_money(data.get("cost")),
                ttft_ms=data.get("ttft_ms"),
                latency_ms=data.get("latency_ms"),
            )
        )
    positions = {str(m.get("id")): i for i, m in enumerate(spec_dict_of(config).get("members", []))}
    candidates.sort(key=lambda c: (c.round, positions.get(c.member, 999), c.member))
    calls = []
    total_cost = Decimal(0)
    unpriced = False
    for index, call in enumerate(state.get("calls", []), start=1):
        usage = call.get("usage") or {}
        provider = directory.get(str(call.get("provider") or ""), {})
        cost = decimal_or_none(call.get("cost"))
        tokens_in, tokens_out = (
            int(usage.get("input_tokens") or 0),
            int(usage.get("output_tokens") or 0),
        )
        if cost is None:
            unpriced = unpriced or bool(tokens_in or tokens_out)
        else:
            total_cost += cost
        calls.append(
            CallOut(
                order=int(call.get("order") or index),
                call_id=str(call.get("call_id") or ""),
                candidate=str(call.get("candidate") or ""),
                round=int(call.get("round") or 0),
                provider=provider.get("label") or str(call.get("provider") or ""),
                simulated=provider.get("kind") == "simulated",
                model=str(call.get("model") or ""),
                key_label=call.get("key_label") or None,
                status=str(call.get("status") or ""),
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                tokens_estimated=bool(usage.get("estimated")),
                cost=_money(cost),
                ttft_ms=call.get("ttft_ms"),
                latency_ms=call.get("latency_ms"),
                attempts=int(call.get("attempts") or 1),
                error=call.get("error") or None,
            )
        )
    run_state = state.get("run", {})
    base = _out(request, run)
    return RunDetailOut(
        **base.model_dump(),
        seq=seq,
        fused_text=run.fused_text,
        candidates=candidates,
        judge=judge,
        verdict=run_state.get("verdict") or run.verdict,
        calls=calls,
        call_totals=CallTotals(
            calls=len(calls),
            input_tokens=sum(c.input_tokens for c in calls),
            output_tokens=sum(c.output_tokens for c in calls),
            cost=_money(total_cost) or "0",
            unpriced=unpriced,
        ),
    )


# --- access ------------------------------------------------------------------------------


def _run_for(request: HttpRequest, ws: str, run_id: uuid.UUID, min_role: str) -> Run:
    """The run, 404 for outsiders and unknown ids, 403 when the role is too low."""
    membership = api_membership(request, ws)
    run = run_in_workspace(membership.workspace, run_id)
    _require(membership, min_role)
    return run


def _require(membership: Membership, min_role: str) -> None:
    if not membership.has_role(min_role):
        raise PermissionDenied(f"This needs the {min_role} role or higher.")


# --- routes ------------------------------------------------------------------------------


@router.post("/workspaces/{ws}/runs", response={201: RunDetailOut})
def create_run(request: HttpRequest, ws: str, payload: RunIn) -> Status[RunDetailOut]:
    membership = api_membership(request, ws, min_role=Role.MEMBER)
    user = api_user(request)
    pool = pool_by_ref(user, membership.workspace, payload.pool)
    if pool is None:
        raise ServiceError(
            f"No pool {payload.pool!r} in this workspace.", field="pool", code="unknown_pool"
        )
    prompt, system_prompt = services.prompt_validate(payload.prompt, payload.system_prompt)
    config = pool_config(pool, user)
    estimate = config_estimate(config, prompt=prompt, system_prompt=system_prompt)
    run = services.run_create(
        workspace=membership.workspace,
        user=user,
        config=config,
        prompt=prompt,
        system_prompt=system_prompt,
        pool=pool,
        source=RunSource.API,
        estimated_cost=estimate.priced_usd,
    )
    return Status(201, _detail(request, run_in_workspace(membership.workspace, run.pk)))


@router.get("/workspaces/{ws}/runs", response=RunPage)
def list_runs(request: HttpRequest, ws: str, filters: Query[RunFiltersIn]) -> RunPage:
    membership = api_membership(request, ws)
    workspace = membership.workspace
    pool_id = None
    if filters.pool:
        pool = pool_by_ref(api_user(request), workspace, filters.pool)
        # A pool deleted since still filters by its id; an unknown one matches nothing.
        pool_id = (
            pool.pk if pool is not None else (int(filters.pool) if filters.pool.isdigit() else -1)
        )
    if filters.status and filters.status not in RunStatus.values:
        raise ServiceError(
            f"Unknown status {filters.status!r}.", field="status", code="invalid_filter"
        )
    runs = runs_filtered(
        workspace,
        RunFilters(
            pool=pool_id,
            model=filters.model or "",
            status=filters.status or "",
            author=filters.author or "",
            date_from=filters.date_from,
            date_to=filters.date_to,
            q=(filters.q or "").strip(),
        ),
    )
    count = runs.count()
    pages = max(1, ceil(count / filters.page_size))
    start = (filters.page - 1) * filters.page_size
    rows = list(runs[start : start + filters.page_size])
    return RunPage(
        count=count,
        page=filters.page,
        pages=pages,
        page_size=filters.page_size,
        results=[_out(request, run, winner_model=run.winner_model) for run in rows],  # type: ignore[attr-defined]
    )


@router.get("/workspaces/{ws}/runs/{run_id}", response=RunDetailOut)
def read_run(request: HttpRequest, ws: str, run_id: uuid.UUID) -> RunDetailOut:
    return _detail(request, _run_for(request, ws, run_id, Role.VIEWER))


@router.post("/workspaces/{ws}/runs/{run_id}/cancel", response=RunDetailOut)
def cancel_run(request: HttpRequest, ws: str, run_id: uuid.UUID) -> RunDetailOut:
    run = _run_for(request, ws, run_id, Role.MEMBER)
    services.run_cancel(run=run, user=api_user(request))
    run.refresh_from_db()
    return _detail(request, run)


@router.post("/workspaces/{ws}/runs/{run_id}/rerun", response={201: RunDetailOut})
def rerun_run(request: HttpRequest, ws: str, run_id: uuid.UUID) -> Status[RunDetailOut]:
    run = _run_for(request, ws, run_id, Role.MEMBER)
    new = services.run_rerun(run=run, user=api_user(request))
    return Status(201, _detail(request, run_in_workspace(run.workspace, new.pk)))
