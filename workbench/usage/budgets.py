"""Monthly budgets: reserve a run's estimate before it is dispatched, count its actual cost once
it ends.

A run's reservation is its own row: while it is not terminal its ``estimated_cost`` counts
against the month; once it ends its ``total_cost`` does instead. So settling needs no second
write that could be lost: ending the run is the settlement. What makes reservations safe under
concurrency is the lock taken on the budget row before summing (``budget_reserve``), held until
the caller's transaction, which creates the run, commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from workbench.accounts.models import User, Workspace
from workbench.lib.errors import ServiceError
from workbench.runs.models import TERMINAL_STATUSES, Run
from workbench.usage.models import WorkspaceBudget

ZERO = Decimal(0)


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BudgetState:
    cap: Decimal | None
    spent: Decimal  # runs ended this month
    reserved: Decimal  # estimates of runs not ended yet

    @property
    def remaining(self) -> Decimal | None:
        return None if self.cap is None else self.cap - self.spent - self.reserved


def _used(workspace: Workspace, user: User | None = None) -> tuple[Decimal, Decimal]:
    runs = Run.objects.filter(workspace=workspace)
    if user is not None:
        runs = runs.filter(created_by=user)
    terminal = Q(status__in=TERMINAL_STATUSES)
    spent = runs.filter(terminal, created_at__gte=month_start()).aggregate(s=Sum("total_cost"))
    reserved = runs.exclude(terminal).aggregate(s=Sum("estimated_cost"))
    return spent["s"] or ZERO, reserved["s"] or ZERO


def budget_state(workspace: Workspace, user: User | None = None) -> BudgetState:
    budget = WorkspaceBudget.objects.filter(workspace=workspace).first()
    cap = None
    if budget is not None:
        cap = budget.per_user_monthly_usd if user is not None else budget.monthly_usd
    spent, reserved = _used(workspace, user)
    return BudgetState(cap=cap, spent=spent, reserved=reserved)


@transaction.atomic
def budget_set(
    *, workspace: Workspace, monthly_usd: Decimal | None, per_user_monthly_usd: Decimal | None
) -> WorkspaceBudget:
    for value in (monthly_usd, per_user_monthly_usd):
        if value is not None and value < 0:
            raise ServiceError("A budget cannot be negative.", field="monthly_usd")
    budget, _ = WorkspaceBudget.objects.update_or_create(
        workspace=workspace,
        defaults={"monthly_usd": monthly_usd, "per_user_monthly_usd": per_user_monthly_usd},
    )
    return budget


def budget_reserve(*, workspace: Workspace, user: User | None, estimate: Decimal | None) -> None:
    """Refuse (``ServiceError``, code ``budget_exceeded``) a run whose estimate does not fit.

    Call it inside the transaction that creates the run: the lock taken here is held until that
    commits, so the next reservation sees this run. An unpriced estimate counts as zero.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("budget_reserve must run inside the run's transaction")
    locked = WorkspaceBudget.objects.filter(workspace=workspace).update(updated_at=timezone.now())
    if not locked:
        return
    budget = WorkspaceBudget.objects.select_for_update().get(workspace=workspace)
    amount = estimate or ZERO
    checks = [(budget.monthly_usd, None, "the workspace's")]
    if user is not None:
        checks.append((budget.per_user_monthly_usd, user, "your"))
    for cap, who, whose in checks:
        if cap is None:
            continue
        spent, reserved = _used(workspace, who)
        if spent + reserved + amount > cap:
            left = max(cap - spent - reserved, ZERO)
            raise ServiceError(
                f"This run could cost up to ${amount:.4f}, but only ${left:.4f} of {whose} "
                f"monthly budget of ${cap:.2f} is left (spent ${spent:.4f}, "
                f"${reserved:.4f} reserved by runs in progress).",
                field="prompt",
                code="budget_exceeded",
            )
