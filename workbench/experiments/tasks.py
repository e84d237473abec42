"""Celery tasks: ids in, one service call, nothing else."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from workbench.experiments import services


@shared_task(
    name="experiments.advance",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=20,
)
def experiment_advance(experiment_id: int) -> None:
    services.experiment_tick(experiment_id=experiment_id)


@shared_task(name="experiments.advance_all")
def experiments_advance_all() -> None:
    services.experiments_advance_all()
