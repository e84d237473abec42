"""Monthly budgets: estimates reserved before dispatch, under a lock, settled when runs end."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from tests.workbench.runs.helpers import simulated_pool
from workbench.lib.errors import ServiceError
from workbench.pools.services import pool_freeze
from workbench.runs.launch import config_estimate
from workbench.runs.models import Run, RunStatus
from workbench.runs.services import run_create
from workbench.usage.budgets import budget_set, budget_state

FAST = "sim-fast@ttft=0.01,tps=0,tokens=10"


def create(pool, user, estimate: Decimal) -> Run:
    return run_create(
        workspace=pool.workspace, user=user, config=pool_freeze(pool), prompt="hi", pool=pool,
        estimated_cost=estimate,
    )  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_it_overshoots_a_cap_by_at_most_one_run_under_concurrency(
    alice, workspace, monkeypatch
) -> None:
    # No worker may end these runs meanwhile: an ended run frees its reservation, and the
    # count below would then depend on timing (a session's live-stack worker may be running).
    from workbench.runs.tasks import run_execute

    monkeypatch.setattr(run_execute, "delay_on_commit", lambda *args, **kwargs: None)
    pool = simulated_pool(workspace, alice, [FAST, FAST])
    estimate = config_estimate(pool_freeze(pool), prompt="hi").priced_usd
    assert estimate > 0
    cap = estimate * Decimal("5.5")
    budget_set(workspace=workspace, monthly_usd=cap, per_user_monthly_usd=None)
    errors: list[str] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        try:
            create(pool, alice, estimate)
        except ServiceError as exc:
            errors.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    reserved = sum(r.estimated_cost for r in Run.objects.all())
    assert Run.objects.count() == 5 and len(errors) == 15
    assert set(errors) == {"budget_exceeded"}
    assert reserved <= cap + estimate


@pytest.mark.django_db
def test_it_counts_the_actual_cost_once_a_run_ends(alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST])
    budget_set(workspace=workspace, monthly_usd=Decimal("1"), per_user_monthly_usd=None)
    run = create(pool, alice, Decimal("0.6"))
    assert budget_state(workspace).reserved == Decimal("0.6")
    with pytest.raises(ServiceError):
        create(pool, alice, Decimal("0.6"))

    Run.objects.filter(pk=run.pk).update(status=RunStatus.FINISHED, total_cost=Decimal("0.1"))

    state = budget_state(workspace)
    assert (state.spent, state.reserved, state.remaining) == (Decimal("0.1"), 0, Decimal("0.9"))
    create(pool, alice, Decimal("0.6"))


@pytest.mark.django_db
def test_it_caps_each_member_separately(alice, bob, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST])
    budget_set(workspace=workspace, monthly_usd=None, per_user_monthly_usd=Decimal("0.5"))
    create(pool, alice, Decimal("0.4"))
    with pytest.raises(ServiceError, match="your monthly budget"):
        create(pool, alice, Decimal("0.2"))
    create(pool, bob, Decimal("0.4"))


@pytest.mark.django_db
def test_it_leaves_workspaces_without_a_budget_uncapped(alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST])
    create(pool, alice, Decimal("1000"))
    assert budget_state(workspace).remaining is None
