"""REST routes for runs: start one on a pool, read its full state, list, cancel, rerun.

Same rules as the pages: outsiders get 404, viewers read and get 403 on writes. Money is a
string (a Decimal, never a float); ``null`` where a cost is unknown ("unpriced").
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from math import ceil
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja import Field, Query, Router, Schema, Status

from workbench.accounts.models import Membership, Role
from workbench.api.access import api_membership, api_user
from workbench.lib.errors import ServiceError
from workbench.runs import services
from workbench.runs.display import run_state_now, run_view
from workbench.runs.history import PAGE_SIZE, RunFilters, runs_filtered
from workbench.runs.launch import config_estimate, pool_by_ref, pool_config
from workbench.runs.models import Run, RunSource, RunStatus
from workbench.runs.numbers import money_text
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
    picked: bool | None = Field(
        None,
        description="true: a person picked a winner; false: nobody did (a tie or "
        '"none is good" is not a pick).',
    )
    page: int = Field(1, ge=1)
    page_size: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


# --- building responses --------------------------------------------------------------------


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
        estimated_cost=money_text(run.estimated_cost),
        totals=Totals(
            input_tokens=run.input_tokens,
            output_tokens=run.output_tokens,
            cost=money_text(run.total_cost),
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
    """The run's full state, from the same view model the run page renders."""
    seq, state = run_state_now(run)
    view = run_view(run, state)
    labels = (run.config or {}).get("labels") or {}
    candidates = [
        CandidateOut(
            member=col.member,
            label=str(labels.get(col.member) or col.model or col.member),
            round=col.round,
            status=col.status,
            provider=col.provider["label"],
            provider_kind=col.provider["kind"],
            simulated=col.provider["simulated"],
            model=col.model,
            text=col.text,
            error=col.error or None,
            finish_reason=col.finish_reason or None,
            input_tokens=col.input_tokens or 0,
            output_tokens=col.output_tokens or 0,
            tokens_estimated=col.tokens_estimated,
            cost=money_text(col.cost),
            ttft_ms=col.ttft_ms,
            latency_ms=col.latency_ms,
        )
        for round_ in view.rounds
        for col in round_.columns
    ]
    judge = [
        JudgePassOut(
            part=jp.part,
            judge=jp.judge,
            phase=jp.phase,
            status=jp.status,
            model=jp.model or None,
            text=jp.text,
        )
        for jp in view.judge_passes
    ]
    calls = [
        CallOut(
            order=row.order,
            call_id=row.call_id,
            candidate=row.who,
            round=row.round,
            provider=row.provider["label"],
            simulated=row.provider["simulated"],
            model=row.model,
            key_label=row.key_label or None,
            status=row.status,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            tokens_estimated=row.tokens_estimated,
            cost=money_text(row.cost),
            ttft_ms=row.ttft_ms,
            latency_ms=row.latency_ms,
            attempts=row.attempts,
            error=row.error or None,
        )
        for row in view.calls
    ]
    return RunDetailOut(
        **_out(request, run).model_dump(),
        seq=seq,
        fused_text=run.fused_text,
        candidates=candidates,
        judge=judge,
        verdict=state.get("run", {}).get("verdict") or run.verdict,
        calls=calls,
        call_totals=CallTotals(
            calls=view.totals.calls,
            input_tokens=view.totals.input_tokens,
            output_tokens=view.totals.output_tokens,
            cost=money_text(view.totals.cost) or "0",
            unpriced=view.totals.unpriced,
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
            picked=filters.picked,
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
