"""Reads about datasets and experiments, always scoped to a workspace."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.http import Http404

from workbench.accounts.models import Workspace
from workbench.experiments.models import (
    Dataset,
    DatasetItem,
    Experiment,
    ItemResult,
    ItemStatus,
)


def datasets_of(workspace: Workspace) -> QuerySet[Dataset]:
    return Dataset.objects.filter(workspace=workspace).select_related("created_by")


def dataset_get(workspace: Workspace, dataset_id: int) -> Dataset:
    try:
        return datasets_of(workspace).get(pk=dataset_id)
    except (Dataset.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def items_of(dataset: Dataset) -> QuerySet[DatasetItem]:
    return dataset.items.order_by("position")


def experiments_of(workspace: Workspace) -> QuerySet[Experiment]:
    return (
        Experiment.objects.filter(workspace=workspace)
        .select_related("dataset", "created_by")
        .annotate(
            arm_count=Count("arms", distinct=True),
        )
    )


def experiment_get(workspace: Workspace, experiment_id: int) -> Experiment:
    try:
        return (
            Experiment.objects.select_related("dataset", "created_by", "workspace")
            .prefetch_related("arms")
            .get(pk=experiment_id, workspace=workspace)
        )
    except (Experiment.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


@dataclass(frozen=True)
class Progress:
    total: int
    pending: int
    running: int
    done: int
    failed: int
    skipped: int
    spent: Decimal

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    @property
    def percent(self) -> int:
        return int(100 * self.finished / self.total) if self.total else 100

    @property
    def failed_percent(self) -> float:
        return 100 * self.failed / self.total if self.total else 0.0


def experiment_progress(experiment: Experiment) -> Progress:
    counts = experiment.results.aggregate(
        total=Count("pk"),
        pending=Count("pk", filter=Q(status=ItemStatus.PENDING)),
        running=Count("pk", filter=Q(status=ItemStatus.RUNNING)),
        done=Count("pk", filter=Q(status=ItemStatus.DONE)),
        failed=Count("pk", filter=Q(status=ItemStatus.FAILED)),
        skipped=Count("pk", filter=Q(status=ItemStatus.SKIPPED)),
        spent=Sum("cost"),
    )
    spent = counts.pop("spent") or Decimal(0)
    return Progress(spent=spent, **counts)


def results_of(experiment: Experiment) -> QuerySet[ItemResult]:
    return experiment.results.select_related("item", "arm", "run").order_by(
        "item__position", "arm__position"
    )
