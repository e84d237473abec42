"""Celery tasks: ids in, one service call, nothing else."""

from __future__ import annotations

from celery import Task, shared_task
from django.db import InterfaceError, OperationalError

from workbench.runs import execution, services


@shared_task(
    bind=True,
    name="runs.execute",
    acks_late=True,
    reject_on_worker_lost=True,
    # No Celery time limits: the thread pool the workers run ignores them. ``execution``
    # enforces RUN_TIME_LIMIT_S (the run is cancelled, its output kept) and
    # RUN_HARD_TIME_LIMIT_S (the task stops waiting and fails the run) itself.
    # A database that is briefly unreachable must not strand the run in "queued".
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=50,
)
def run_execute(self: Task, run_id: str) -> None:
    try:
        execution.run_execute(run_id=run_id)
    except execution.RunBusy as busy:
        raise self.retry(countdown=busy.retry_in_s) from None


@shared_task(name="runs.reap")
def runs_reap() -> None:
    services.runs_reap()
    services.runs_redispatch_lost()
