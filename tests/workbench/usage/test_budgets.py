"""Monthly budgets: estimates reserved before dispatch, under a lock, settled when runs end;
each member's own cap or the default; models without a price refused while a cap applies."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection

from tests.workbench.gateway.helpers import eager_runs
from tests.workbench.runs.helpers import simulated_pool
from workbench.keys.models import ModelPrice, Scope
from workbench.keys.services import credential_create
from workbench.lib.errors import ServiceError
from workbench.pools.inputs import MemberInput, PoolInput
from workbench.pools.services import pool_create, pool_freeze
from workbench.runs.launch import config_estimate
from workbench.runs.models import TERMINAL_STATUSES, ProviderCall, Run, RunStatus
from workbench.runs.services import run_create
from workbench.usage.budgets import budget_set, budget_state, member_budget_set
from workbench.usage.models import WorkspaceBudget

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

    monkeypatch.setattr(run_execute, "delay", lambda *args, **kwargs: None)
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


def concurrently(count: int, attempt) -> list[str]:  # type: ignore[no-untyped-def]
    """Run ``attempt`` in ``count`` threads released at once; the codes of the refusals."""
    errors: list[str] = []
    barrier = threading.Barrier(count)

    def one() -> None:
        barrier.wait()
        try:
            attempt()
        except ServiceError as exc:
            errors.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.mark.django_db(transaction=True)
def test_it_keeps_twenty_executing_runs_within_the_cap_but_for_one_call(alice, workspace) -> None:
    # Members answer exactly max_tokens, so a run costs about what it reserves: were the
    # reservations not serialised, 20 runs would spend about 3.6 times the cap.
    credential = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="sim", scope=Scope.WORKSPACE
    )
    seat = MemberInput(
        credential_id=credential.pk, model="sim-fast@ttft=0.02,tps=0,tokens=60", max_tokens=20,
        custom_model=True,
    )  # fmt: skip
    pool = pool_create(
        workspace=workspace, user=alice, data=PoolInput(name="pair", members=[seat, seat])
    )
    estimate = config_estimate(pool_freeze(pool), prompt="hi").priced_usd
    # What the database keeps of 5.5 runs' worth (budgets are stored to $0.0001).
    budget_set(
        workspace=workspace, monthly_usd=estimate * Decimal("5.5"), per_user_monthly_usd=None
    )
    cap = WorkspaceBudget.objects.get(workspace=workspace).monthly_usd
    assert cap is not None and 5 * estimate < cap < 7 * estimate

    with eager_runs():  # each run executes in its thread as soon as it is created
        errors = concurrently(20, lambda: create(pool, alice, estimate))

    runs = list(Run.objects.all())
    calls = list(ProviderCall.objects.all())
    assert all(r.status in TERMINAL_STATUSES for r in runs)
    assert 5 <= len(runs) < 20 and len(errors) == 20 - len(runs)
    assert set(errors) == {"budget_exceeded"}
    assert len(calls) == 2 * len(runs)  # a refused run dispatched nothing
    spent = sum(c.cost for c in calls)
    assert spent <= cap + max(c.cost for c in calls)
    # Settled: the reservations are gone and the month holds what the calls cost.
    state = budget_state(workspace)
    assert state.reserved == 0 and state.spent == spent == sum(r.total_cost for r in runs)

    # Runs that end cost a little less than they reserved, which may leave room for one more;
    # once the month's spend leaves less than an estimate, a run is refused before any call.
    with eager_runs():
        while state.spent + estimate <= cap:
            create(pool, alice, estimate)
            state = budget_state(workspace)
        with pytest.raises(ServiceError) as refused:
            create(pool, alice, estimate)
    assert refused.value.code == "budget_exceeded"
    assert ProviderCall.objects.count() == 2 * Run.objects.count()
    assert state.spent <= cap


@pytest.mark.django_db
def test_it_gives_a_member_their_own_cap_in_place_of_the_default(
    alice, bob, workspace, monkeypatch
) -> None:
    from workbench.runs.tasks import run_execute

    monkeypatch.setattr(run_execute, "delay", lambda *args, **kwargs: None)
    pool = simulated_pool(workspace, alice, [FAST])
    budget_set(workspace=workspace, monthly_usd=None, per_user_monthly_usd=Decimal("0.5"))
    member_budget_set(workspace=workspace, user=alice, monthly_usd=Decimal("2"))

    create(pool, alice, Decimal("1.5"))  # over the default, within her own cap
    with pytest.raises(ServiceError, match=r"your monthly budget of \$2.00"):
        create(pool, alice, Decimal("0.6"))
    with pytest.raises(ServiceError, match=r"your monthly budget of \$0.50"):
        create(pool, bob, Decimal("0.6"))
    state = budget_state(workspace, alice)
    assert (state.cap, state.custom, state.remaining) == (Decimal("2"), True, Decimal("0.5"))

    member_budget_set(workspace=workspace, user=alice, monthly_usd=None)
    assert budget_state(workspace, alice).cap == Decimal("0.5")


@pytest.mark.django_db
def test_it_refuses_a_model_without_a_price_while_a_cap_applies(
    alice, workspace, monkeypatch
) -> None:
    from workbench.runs.tasks import run_execute

    monkeypatch.setattr(run_execute, "delay", lambda *args, **kwargs: None)
    local = credential_create(
        workspace=workspace, user=alice, provider="openai_compatible", label="ollama",
        scope=Scope.WORKSPACE, base_url="http://127.0.0.1:11434/v1",
    )  # fmt: skip
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="local", members=[MemberInput(local.pk, "llama-local", custom_model=True)]
        ),
    )
    estimate = config_estimate(pool_freeze(pool), prompt="hi")
    assert estimate.unpriced_members and estimate.priced_usd == 0  # it would count as $0
    create(pool, alice, estimate.priced_usd)  # no cap: nothing to protect

    for monthly, per_user in ((Decimal("10"), None), (None, Decimal("10"))):
        budget_set(workspace=workspace, monthly_usd=monthly, per_user_monthly_usd=per_user)
        with pytest.raises(ServiceError, match="No price is set for llama-local") as refused:
            create(pool, alice, estimate.priced_usd)
        assert refused.value.code == "budget_unpriced"
    assert Run.objects.count() == 1

    ModelPrice.objects.create(model="llama-local", input_per_million=0, output_per_million=0)
    create(pool, alice, estimate.priced_usd)  # a price, even 0, lets the cap count it
    assert Run.objects.count() == 2


def test_it_counts_nothing_for_a_run_copied_in_from_another_workspace(alice, workspace) -> None:
    from tests.workbench.runs.pages import finished_run
    from workbench.accounts.services import workspace_create
    from workbench.curation.services import run_copy

    original = finished_run(workspace, alice)
    config = dict(original.config)
    for member in config["spec"]["members"]:
        member["model"] = "a-model-without-a-price"
    Run.objects.filter(pk=original.pk).update(total_cost=Decimal("3"), config=config)
    original.refresh_from_db()
    other = workspace_create(owner=alice, name="Other")
    budget_set(workspace=other, monthly_usd=Decimal("10"), per_user_monthly_usd=Decimal("5"))

    # Neither refused for its unpriced model (it calls nothing) nor counted as spent here.
    copy = run_copy(run=original, user=alice, target=other)

    assert copy.total_cost == Decimal("3")  # what it cost where it ran, still shown
    state = budget_state(other)
    assert state.spent == 0 and state.reserved == 0
    assert budget_state(workspace).spent == Decimal("3")  # the original still counts
