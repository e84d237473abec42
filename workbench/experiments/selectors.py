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
from workbench.runs.models import ProviderCall, Run


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


def experiment_runs(experiment: Experiment) -> QuerySet[Run]:
    """Every run the experiment made: item runs and judge (rubric) grading runs."""
    return Run.objects.filter(
        Q(experiment_result__experiment=experiment) | Q(experiment_grade__experiment=experiment)
    )


def experiment_spend(experiment: Experiment) -> Decimal:
    """What the experiment has spent so far: the settled cost of graded items (and of their
    grading calls), plus the calls recorded so far by runs not settled — runs in flight, and
    runs a cancel cut short, which are never settled."""
    results = experiment.results
    settled = results.aggregate(answers=Sum("cost"), grading=Sum("grade_cost"))
    unsettled = ProviderCall.objects.filter(
        Q(run_id__in=results.filter(cost__isnull=True).values("run_id"))
        | Q(run_id__in=results.filter(grade_cost__isnull=True).values("grade_run_id")),
        cost__isnull=False,
    ).aggregate(total=Sum("cost"))["total"]
    return sum(
        (v or Decimal(0) for v in (settled["answers"], settled["grading"], unsettled)), Decimal(0)
    )


@dataclass(frozen=True)
class Progress:
    total: int
    pending: int
    running: int  # answer runs and grading runs in flight
    done: int
    failed: int
    skipped: int
    spent: Decimal
    grading: int = 0  # answered, the judge (rubric) grading run in flight
    awaiting: int = 0  # answered, waiting for people to grade

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
        running=Count("pk", filter=Q(status__in=[ItemStatus.RUNNING, ItemStatus.GRADING])),
        grading=Count("pk", filter=Q(status=ItemStatus.GRADING)),
        done=Count("pk", filter=Q(status=ItemStatus.DONE)),
        awaiting=Count("pk", filter=Q(status=ItemStatus.DONE, correct__isnull=True)),
        failed=Count("pk", filter=Q(status=ItemStatus.FAILED)),
        skipped=Count("pk", filter=Q(status=ItemStatus.SKIPPED)),
    )
    return Progress(spent=experiment_spend(experiment), **counts)


def awaiting_grading(experiment: Experiment) -> QuerySet[ItemResult]:
    """Answers that wait for a person's grade: human items, and answers neither a checker nor
    the judge could grade. Blind: the arms are not part of what a grader needs."""
    return (
        experiment.results.filter(status=ItemStatus.DONE, correct__isnull=True)
        .select_related("item", "arm")
        .order_by("item__position", "arm__position")
    )


@dataclass(frozen=True)
class ReviewGrading:
    """The experiments' part of the review queue."""

    experiments: list[tuple[Experiment, int]]  # with how many answers wait in each
    items: list[ItemResult]  # the first few of them, to grade right there

    def __bool__(self) -> bool:
        return bool(self.experiments)


def review_grading(workspace: Workspace, *, first: int = 5) -> ReviewGrading:
    """Answers of the workspace's experiments that wait for people's grades."""
    waiting = ItemResult.objects.filter(
        experiment__workspace=workspace, status=ItemStatus.DONE, correct__isnull=True
    )
    counts = {
        row["experiment_id"]: row["n"]
        for row in waiting.values("experiment_id").annotate(n=Count("pk"))
    }
    experiments = Experiment.objects.filter(pk__in=counts).select_related("dataset")
    items = waiting.select_related("item", "experiment").order_by(
        "-experiment__created_at", "item__position", "arm__position"
    )
    return ReviewGrading(
        [(e, counts[e.pk]) for e in experiments.order_by("-created_at")], list(items[:first])
    )


def result_get(experiment: Experiment, result_id: int) -> ItemResult:
    try:
        return experiment.results.select_related("item", "arm").get(pk=result_id)
    except (ItemResult.DoesNotExist, ValueError, TypeError):
        raise Http404 from None


def results_of(experiment: Experiment) -> QuerySet[ItemResult]:
    return experiment.results.select_related("item", "arm", "run", "graded_by").order_by(
        "item__position", "arm__position"
    )
