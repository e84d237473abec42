"""REST routes for datasets and experiments (the same rules as the pages: outsiders 404,
viewers read, members and up write)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Field as F
from ninja import File, Form, Router, Schema, Status
from ninja.files import UploadedFile

from workbench.accounts.models import Role
from workbench.api.access import api_membership, api_user
from workbench.experiments import selectors, services
from workbench.experiments.arms import (
    MAX_SAMPLES,
    MIN_SAMPLES,
    ArmChoice,
    ExperimentEstimate,
    GraderChoice,
    PoolModes,
    experiment_estimate,
)
from workbench.experiments.datasets import MAX_FILE_BYTES, DatasetFileError
from workbench.experiments.models import Dataset, Experiment
from workbench.experiments.results import results_json
from workbench.lib.errors import ServiceError
from workbench.runs.launch import pool_by_ref

router = Router(tags=["experiments"])


class DatasetOut(Schema):
    id: int
    name: str
    description: str
    source: str
    filename: str
    item_count: int
    created_at: datetime


class PoolModesIn(Schema):
    pool: str = F(description="A pool, by id or slug.")
    modes: list[Literal["best_of", "merge", "debate"]] = F(
        default_factory=list,
        max_length=3,
        description="Fusion modes to run it in, one arm each (empty: the pool's own mode). "
        "Merge and debate need the pool to have a judge.",
    )


class GraderIn(Schema):
    credential_id: int
    model: str = F(min_length=1, max_length=200)


class EstimateIn(Schema):
    dataset_id: int
    pool: str | None = F(None, description="Shorthand: one pool, in its own mode.")
    pools: list[PoolModesIn] = F(default_factory=list, max_length=12)
    name: str = F("", max_length=120)
    include_pool: bool = True
    include_solos: bool = True
    self_consistency: bool = False
    self_fusion: bool = False
    samples: int = F(5, ge=MIN_SAMPLES, le=MAX_SAMPLES)
    sample_pool: str | None = F(None, description="Pool of the model to sample (default: pool).")
    sample_member: int = F(0, ge=0, description="0-based position of that model in its pool.")
    grader: GraderIn | None = F(
        None, description="The model that grades judge (rubric) items (default: a pool's judge)."
    )
    concurrency: int = F(4, ge=1, le=services.MAX_CONCURRENCY)
    budget_usd: Decimal | None = F(None, gt=0)


class ExperimentIn(EstimateIn):
    estimate_token: str = F(
        "",
        max_length=64,
        description="The token of POST .../experiments/estimate for these same arms: an "
        "experiment starts only on an estimate that was asked for, and is still current.",
    )


class ArmEstimateOut(Schema):
    kind: str
    label: str
    total_usd: str
    per_item_usd: str
    grading_usd: str
    unpriced: bool


class EstimateOut(Schema):
    items: int
    runs: int
    grading_runs: int
    arms: list[ArmEstimateOut]
    answers_usd: str
    grading_usd: str
    total_usd: str
    unpriced: bool
    grader: str | None
    estimate_token: str


class ArmOut(Schema):
    id: int
    position: int
    kind: str
    label: str
    samples: int
    estimated_cost: str


class ProgressOut(Schema):
    total: int
    pending: int
    running: int
    grading: int
    done: int
    awaiting_grading: int
    failed: int
    skipped: int
    spent: str


class ExperimentOut(Schema):
    id: int
    name: str
    status: str
    note: str
    dataset: DatasetOut
    arms: list[ArmOut]
    concurrency: int
    budget_usd: str | None
    estimated_cost: str
    estimate_unpriced: bool
    progress: ProgressOut
    grader: str | None = F(description="The model grading judge (rubric) items, if any.")
    created_by: str | None
    created_at: datetime
    finished_at: datetime | None


def _dataset_out(dataset: Dataset) -> DatasetOut:
    return DatasetOut(
        id=dataset.pk,
        name=dataset.name,
        description=dataset.description,
        source=dataset.source,
        filename=dataset.filename,
        item_count=dataset.item_count,
        created_at=dataset.created_at,
    )


def _out(experiment: Experiment) -> ExperimentOut:
    progress = selectors.experiment_progress(experiment)
    return ExperimentOut(
        id=experiment.pk,
        name=experiment.name,
        status=experiment.status,
        note=experiment.note,
        dataset=_dataset_out(experiment.dataset),
        arms=[
            ArmOut(
                id=a.pk,
                position=a.position,
                kind=a.kind,
                label=a.label,
                samples=a.samples,
                estimated_cost=str(a.estimated_cost),
            )
            for a in experiment.arms.order_by("position")
        ],
        concurrency=experiment.concurrency,
        budget_usd=str(experiment.budget_usd) if experiment.budget_usd is not None else None,
        estimated_cost=str(experiment.estimated_cost),
        estimate_unpriced=experiment.estimate_unpriced,
        progress=ProgressOut(
            total=progress.total,
            pending=progress.pending,
            running=progress.running,
            grading=progress.grading,
            done=progress.done,
            awaiting_grading=progress.awaiting,
            failed=progress.failed,
            skipped=progress.skipped,
            spent=str(progress.spent),
        ),
        grader=experiment.grader_label or None,
        created_by=experiment.created_by.username if experiment.created_by else None,
        created_at=experiment.created_at,
        finished_at=experiment.finished_at,
    )


def _experiment(request: HttpRequest, ws: str, experiment_id: int, min_role: str) -> Experiment:
    membership = api_membership(request, ws)
    experiment = selectors.experiment_get(membership.workspace, experiment_id)
    api_membership(request, ws, min_role=min_role)
    return experiment


@router.get("/workspaces/{ws}/datasets", response=list[DatasetOut])
def list_datasets(request: HttpRequest, ws: str) -> list[DatasetOut]:
    membership = api_membership(request, ws)
    return [_dataset_out(d) for d in selectors.datasets_of(membership.workspace)]


@router.post("/workspaces/{ws}/datasets", response={201: DatasetOut})
def upload_dataset(
    request: HttpRequest, ws: str, file: File[UploadedFile], name: Form[str] = ""
) -> Status[DatasetOut]:
    """Upload JSONL or CSV; every bad line is reported (400) and nothing is imported."""
    membership = api_membership(request, ws, min_role=Role.MEMBER)
    try:
        dataset = services.dataset_import(
            workspace=membership.workspace,
            user=api_user(request),
            name=name,
            filename=file.name or "",
            data=file.read(MAX_FILE_BYTES + 1),
        )
    except DatasetFileError as err:
        error = ServiceError(err.message, field="file", code="bad_file")
        error.errors = {"file": err.lines}  # type: ignore[attr-defined]
        raise error from None
    return Status(201, _dataset_out(dataset))


@router.get("/workspaces/{ws}/experiments", response=list[ExperimentOut])
def list_experiments(request: HttpRequest, ws: str) -> list[ExperimentOut]:
    membership = api_membership(request, ws)
    return [_out(e) for e in selectors.experiments_of(membership.workspace)[:100]]


def _choice(request: HttpRequest, ws: str, payload: EstimateIn) -> tuple[Any, ...]:
    membership = api_membership(request, ws, min_role=Role.MEMBER)
    user, workspace = api_user(request), membership.workspace
    dataset = selectors.dataset_get(workspace, payload.dataset_id)

    def pool_of(ref: str) -> Any:
        found = pool_by_ref(user, workspace, ref)
        if found is None:
            raise ServiceError("No such pool in this workspace.", field="pool", code="unknown_pool")
        return found

    pool = pool_of(payload.pool) if payload.pool else None
    pools = tuple(PoolModes(pool_of(p.pool), tuple(p.modes)) for p in payload.pools)
    if pool is None and not pools:
        raise ServiceError("Name a pool, or pools with their modes.", field="pool")
    sample_pool = pool_of(payload.sample_pool) if payload.sample_pool else None
    choice = ArmChoice(
        pool=pool,
        include_pool=payload.include_pool,
        pools=pools,
        include_solos=payload.include_solos,
        self_consistency=payload.self_consistency,
        self_fusion=payload.self_fusion,
        samples=payload.samples,
        base_pool=sample_pool,
        base_member=payload.sample_member,
    )
    grader = (
        GraderChoice(payload.grader.credential_id, payload.grader.model) if payload.grader else None
    )
    return user, workspace, dataset, choice, grader


def _estimate_out(estimate: ExperimentEstimate) -> EstimateOut:
    return EstimateOut(
        items=estimate.items,
        runs=estimate.runs,
        grading_runs=estimate.grading_runs,
        arms=[
            ArmEstimateOut(
                kind=a.plan.kind,
                label=a.plan.label,
                total_usd=str(a.total),
                per_item_usd=str(a.mean),
                grading_usd=str(a.grading_total),
                unpriced=a.unpriced,
            )
            for a in estimate.arms
        ],
        answers_usd=str(estimate.answers_total),
        grading_usd=str(estimate.grading_total),
        total_usd=str(estimate.total),
        unpriced=estimate.unpriced,
        grader=estimate.grader_label or None,
        estimate_token=estimate.token,
    )


@router.post("/workspaces/{ws}/experiments/estimate", response=EstimateOut)
def estimate_experiment(request: HttpRequest, ws: str, payload: EstimateIn) -> EstimateOut:
    """The worst-case cost of every arm (and of grading), and the token that starts it."""
    user, workspace, dataset, choice, grader = _choice(request, ws, payload)
    return _estimate_out(
        experiment_estimate(
            user=user, workspace=workspace, dataset=dataset, choice=choice, grader=grader
        )
    )


@router.post("/workspaces/{ws}/experiments", response={201: ExperimentOut})
def create_experiment(
    request: HttpRequest, ws: str, payload: ExperimentIn
) -> Status[ExperimentOut]:
    """Start an experiment: first POST the same body to .../experiments/estimate, and pass
    its ``estimate_token`` here (refused with 400 ``estimate_required`` or ``estimate_stale``
    otherwise). The budget cap is checked against that estimate."""
    user, workspace, dataset, choice, grader = _choice(request, ws, payload)
    experiment = services.experiment_create(
        workspace=workspace,
        user=user,
        dataset=dataset,
        choice=choice,
        grader=grader,
        estimate_token=payload.estimate_token,
        name=payload.name,
        concurrency=payload.concurrency,
        budget_usd=payload.budget_usd,
    )
    return Status(201, _out(experiment))


@router.get("/workspaces/{ws}/experiments/{experiment_id}", response=ExperimentOut)
def read_experiment(request: HttpRequest, ws: str, experiment_id: int) -> ExperimentOut:
    return _out(_experiment(request, ws, experiment_id, Role.VIEWER))


@router.get("/workspaces/{ws}/experiments/{experiment_id}/results", response=dict[str, Any])
def read_results(request: HttpRequest, ws: str, experiment_id: int) -> dict[str, Any]:
    """Per-arm accuracy (95 % Wilson interval), cost, latency, pairwise McNemar tests, items."""
    return results_json(_experiment(request, ws, experiment_id, Role.VIEWER))


@router.post("/workspaces/{ws}/experiments/{experiment_id}/pause", response=ExperimentOut)
def pause_experiment(request: HttpRequest, ws: str, experiment_id: int) -> ExperimentOut:
    experiment = _experiment(request, ws, experiment_id, Role.MEMBER)
    services.experiment_pause(experiment=experiment, user=api_user(request))
    return _out(selectors.experiment_get(experiment.workspace, experiment.pk))


@router.post("/workspaces/{ws}/experiments/{experiment_id}/resume", response=ExperimentOut)
def resume_experiment(request: HttpRequest, ws: str, experiment_id: int) -> ExperimentOut:
    experiment = _experiment(request, ws, experiment_id, Role.MEMBER)
    services.experiment_resume(experiment=experiment, user=api_user(request))
    return _out(selectors.experiment_get(experiment.workspace, experiment.pk))


@router.post("/workspaces/{ws}/experiments/{experiment_id}/cancel", response=ExperimentOut)
def cancel_experiment(request: HttpRequest, ws: str, experiment_id: int) -> ExperimentOut:
    experiment = _experiment(request, ws, experiment_id, Role.MEMBER)
    services.experiment_cancel(experiment=experiment, user=api_user(request))
    return _out(selectors.experiment_get(experiment.workspace, experiment.pk))
