"""The runs of a workspace as history: filtered, newest first, with what a list row shows.

One place for the filters, so the runs page and ``GET /api/v1/workspaces/{ws}/runs`` agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.utils import timezone

from workbench.accounts.models import Workspace
from workbench.runs.models import Candidate, Run, RunStatus
from workbench.runs.selectors import runs_of_workspace

PAGE_SIZE = 25
PICK = "pick"  # curation.models.Choice.PICK: a person picked a winner
# "finished" in a filter means "ended with answers", with or without the judge's verdict.
STATUS_GROUPS: dict[str, list[str]] = {
    RunStatus.FINISHED: [RunStatus.FINISHED, RunStatus.FINISHED_WITHOUT_VERDICT],
}


@dataclass(frozen=True)
class RunFilters:
    pool: int | None = None
    model: str = ""
    status: str = ""
    author: str = ""  # username
    date_from: date | None = None
    date_to: date | None = None
    q: str = ""  # words to find in the prompt
    # A person picked a winner (curation: a pick, not a tie or "none is good"); None: either.
    picked: bool | None = None

    @property
    def active(self) -> bool:
        return self.picked is not None or any(
            (self.pool, self.model, self.status, self.author, self.date_from, self.date_to, self.q)
        )


def _day_start(day: date) -> datetime:
    # A date means a day in the reader's zone (the middleware activates the user's).
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


# Dates outside these bound nothing (no run is that old or that new) and would overflow
# datetime arithmetic near year 1 and 9999, so they are left out of the query.
_EARLIEST, _LATEST = date(1900, 1, 1), date(9000, 1, 1)


def created_between(
    runs: QuerySet[Run], date_from: date | None, date_to: date | None
) -> QuerySet[Run]:
    """Runs created from the first day to the last one, both included, in the reader's zone."""
    if date_from and date_from > _EARLIEST:
        runs = runs.filter(created_at__gte=_day_start(min(date_from, _LATEST)))
    if date_to and date_to < _LATEST:
        runs = runs.filter(created_at__lt=_day_start(max(date_to, _EARLIEST) + timedelta(days=1)))
    return runs


def runs_filtered(workspace: Workspace, filters: RunFilters) -> QuerySet[Run]:
    runs = runs_of_workspace(workspace)
    if filters.pool:
        runs = runs.filter(pool_id=filters.pool)
    if filters.model:
        runs = runs.filter(candidates__model=filters.model)
    if filters.status:
        runs = runs.filter(status__in=STATUS_GROUPS.get(filters.status, [filters.status]))
    if filters.author:
        runs = runs.filter(created_by__username=filters.author)
    runs = created_between(runs, filters.date_from, filters.date_to)
    if filters.picked is not None:
        human_pick = Q(judgments__choice=PICK)
        runs = runs.filter(human_pick) if filters.picked else runs.exclude(human_pick)
    for word in filters.q.split()[:8]:
        runs = runs.filter(Q(prompt__icontains=word) | Q(system_prompt__icontains=word))
    winner_model = (
        Candidate.objects.filter(run=OuterRef("pk"), member=OuterRef("winner"))
        .order_by("-round")
        .values("model")[:1]
    )
    return (
        runs.distinct().annotate(winner_model=Subquery(winner_model)).order_by("-created_at", "-pk")
    )


@dataclass(frozen=True)
class FilterChoices:
    pools: list[tuple[int, str]]
    models: list[str]
    authors: list[str]


def filter_choices(workspace: Workspace) -> FilterChoices:
    """What the filters offer: the pools, models and people the workspace's runs have had."""
    runs = runs_of_workspace(workspace)
    pools: dict[int, str] = {}
    for pool_id, name, frozen_name in (
        runs.exclude(pool=None)
        .order_by("-created_at")
        .values_list("pool_id", "pool__name", "pool_name")
    ):
        pools.setdefault(pool_id, name or frozen_name)
    models = (
        Candidate.objects.filter(run__workspace=workspace)
        .exclude(model="")
        .values_list("model", flat=True)
        .distinct()
        .order_by("model")
    )
    authors = (
        runs.exclude(created_by=None)
        .values_list("created_by__username", flat=True)
        .distinct()
        .order_by("created_by__username")
    )
    return FilterChoices(
        pools=sorted(pools.items(), key=lambda item: item[1].lower()),
        models=list(models),
        authors=list(authors),
    )
