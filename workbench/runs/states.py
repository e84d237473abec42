"""The run's status machine, enforced by the database rather than by whoever writes last.

    queued ──claim──> running ──> finished | finished_without_verdict | failed | cancelled
      │                 │ ▲
      │                 └─┘ resumed (after its worker died) by a new claim
      └──> cancelled | failed

Several parties write a run's status without talking to each other — the worker executing it,
a second worker that took it over, the reaper, a person cancelling — so every change is one
conditional ``UPDATE … WHERE status IN (<states it may come from>)``: a run the reaper failed
cannot flip back to finished when a worker it gave up on wakes up, and a terminal run never
changes again. A worker also fences its writes with the claim it holds (``attempts``): once
another worker has claimed the run, the first one's writes match no row.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet

from workbench.runs.models import Run, RunStatus

TRANSITIONS: dict[str, frozenset[str]] = {
    RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {
            RunStatus.RUNNING,
            RunStatus.FINISHED,
            RunStatus.FINISHED_WITHOUT_VERDICT,
            RunStatus.FAILED,
            RunStatus.CANCELLED,
        }
    ),
}


def sources_of(status: str) -> list[str]:
    """The statuses a run may move to ``status`` from."""
    return sorted(source for source, targets in TRANSITIONS.items() if status in targets)


def owned(run_id: str, attempt: int | None = None) -> Q:
    """Rows of a run still executing under ``attempt`` (any attempt when None)."""
    condition = Q(pk=run_id, status=RunStatus.RUNNING)
    return condition & Q(attempts=attempt) if attempt is not None else condition


def transition(
    run_id: str,
    status: str,
    *,
    attempt: int | None = None,
    only_from: frozenset[str] | None = None,
    **fields: Any,
) -> bool:
    """Move the run to ``status`` (setting ``fields``) if the machine allows it from where the
    run is now (and it is in ``only_from``, when given), and, with ``attempt``, only while that
    claim still holds. True if it moved."""
    sources = [s for s in sources_of(status) if only_from is None or s in only_from]
    rows: QuerySet[Run] = Run.objects.filter(pk=run_id, status__in=sources)
    if attempt is not None:
        rows = rows.filter(attempts=attempt)
    return rows.update(status=status, **fields) == 1
