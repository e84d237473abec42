"""Monthly budgets: reserve a run's estimate before it is dispatched, count its actual cost once
it ends.

A run's reservation is its own row: while it is not terminal its ``estimated_cost`` counts
against the month; once it ends its ``total_cost`` does instead. So settling needs no second
write that could be lost: ending the run is the settlement. What makes reservations safe under
concurrency is the lock taken on the budget row before summing (``budget_reserve``), held until
the caller's transaction, which creates the run, commits. The estimate is the worst case (every
call at its full ``max_tokens``), so runs admitted together cannot spend past the cap unless a
provider bills more than it was allowed to produce.

Caps: the workspace's, and each member's — a member's own cap when an owner or admin set one
(``MemberBudget``), else the workspace's default cap per member.

Unpriced models: a cap cannot cover what it cannot count, so while any cap applies to a run, a
run that could call a model without a price (a member, a fallback or the judge) is refused
(``budget_refuse_unpriced``, code ``budget_unpriced``) — never counted as $0. Setting a price,
0 for a free local model, lets it run. The check sits on the creation of the run row
(a ``pre_save`` receiver), so it holds for every way a run is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from fusion.costs import price_for
from workbench.accounts.models import Membership, User, Workspace
from workbench.keys.selectors import price_table
from workbench.lib.errors import ServiceError
from workbench.runs.engine_bridge import spec_dict_of
from workbench.runs.models import COPIED_FROM, TERMINAL_STATUSES, Run
from workbench.usage.models import MemberBudget, WorkspaceBudget

ZERO = Decimal(0)


def month_start(now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


@dataclass(frozen=True)
class BudgetState:
    cap: Decimal | None
    spent: Decimal  # runs ended this month
    reserved: Decimal  # estimates of runs not ended yet
    custom: bool = False  # a member's own cap rather than the default per member

    @property
    def remaining(self) -> Decimal | None:
        return None if self.cap is None else self.cap - self.spent - self.reserved


_TERMINAL = Q(status__in=TERMINAL_STATUSES)
# A run copied in from another workspace (``curation.services.run_copy``) shows what it cost
# there; nothing was spent here.
_COPY = Q(config__has_key=COPIED_FROM)


def _counted(workspace: Workspace) -> QuerySet[Run]:
    """The workspace's runs that spend from its budgets (copies do not)."""
    return Run.objects.filter(workspace=workspace).exclude(_COPY)


def _spent_this_month() -> Q:
    return _TERMINAL & Q(created_at__gte=month_start())


def _used(workspace: Workspace, user: User | None = None) -> tuple[Decimal, Decimal]:
    runs = _counted(workspace)
    if user is not None:
        runs = runs.filter(created_by=user)
    # One statement, so one snapshot: as two, a run ending between them (PostgreSQL's read
    # committed gives each its own) would be counted as neither reserved nor spent.
    used = runs.aggregate(
        spent=Sum("total_cost", filter=_spent_this_month()),
        reserved=Sum("estimated_cost", filter=~_TERMINAL),
    )
    return used["spent"] or ZERO, used["reserved"] or ZERO


def used_by_member(workspace: Workspace) -> dict[int, tuple[Decimal, Decimal]]:
    """user id -> (spent this month, reserved now), for every member with runs."""
    rows = (
        _counted(workspace)
        .filter(created_by__isnull=False)
        .values("created_by")
        .annotate(
            spent=Sum("total_cost", filter=_spent_this_month()),
            reserved=Sum("estimated_cost", filter=~_TERMINAL),
        )
        .order_by()
    )
    return {r["created_by"]: (r["spent"] or ZERO, r["reserved"] or ZERO) for r in rows}


def member_cap(
    budget: WorkspaceBudget | None, workspace: Workspace, user: User | int
) -> tuple[Decimal | None, bool]:
    """A member's monthly cap and whether it is their own (else the default per member)."""
    user_id = user if isinstance(user, int) else user.pk
    own = (
        MemberBudget.objects.filter(workspace=workspace, user_id=user_id)
        .values_list("monthly_usd", flat=True)
        .first()
    )
    return cap_of(budget, own)


def cap_of(budget: WorkspaceBudget | None, own: Decimal | None) -> tuple[Decimal | None, bool]:
    """A member's own cap when they have one, else the workspace's default per member."""
    if own is not None:
        return own, True
    return (budget.per_user_monthly_usd if budget is not None else None), False


def budget_state(workspace: Workspace, user: User | None = None) -> BudgetState:
    """The workspace's month (``user`` None) or one member's."""
    budget = WorkspaceBudget.objects.filter(workspace=workspace).first()
    cap, custom = (
        (budget.monthly_usd if budget else None, False)
        if user is None
        else member_cap(budget, workspace, user)
    )
    spent, reserved = _used(workspace, user)
    return BudgetState(cap=cap, spent=spent, reserved=reserved, custom=custom)


def _checked(value: Decimal | None) -> Decimal | None:
    if value is not None and value < 0:
        raise ServiceError("A budget cannot be negative.", field="monthly_usd")
    return value


@transaction.atomic
def budget_set(
    *, workspace: Workspace, monthly_usd: Decimal | None, per_user_monthly_usd: Decimal | None
) -> WorkspaceBudget:
    budget, _ = WorkspaceBudget.objects.update_or_create(
        workspace=workspace,
        defaults={
            "monthly_usd": _checked(monthly_usd),
            "per_user_monthly_usd": _checked(per_user_monthly_usd),
        },
    )
    return budget


@transaction.atomic
def member_budget_set(
    *, workspace: Workspace, user: User, monthly_usd: Decimal | None
) -> MemberBudget | None:
    """Give one member their own monthly cap; None goes back to the default per member."""
    if not Membership.objects.filter(workspace=workspace, user=user).exists():
        raise ServiceError(f"{user.username} is not a member of this workspace.", field="user")
    if monthly_usd is None:
        MemberBudget.objects.filter(workspace=workspace, user=user).delete()
        return None
    # The workspace's budget row is the lock every reservation takes: it must exist.
    WorkspaceBudget.objects.get_or_create(workspace=workspace)
    budget, _ = MemberBudget.objects.update_or_create(
        workspace=workspace, user=user, defaults={"monthly_usd": _checked(monthly_usd)}
    )
    return budget


def budget_reserve(*, workspace: Workspace, user: User | None, estimate: Decimal | None) -> None:
    """Refuse (``ServiceError``, code ``budget_exceeded``) a run whose estimate does not fit.

    Call it inside the transaction that creates the run: the lock taken here is held until that
    commits, so the next reservation sees this run.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("budget_reserve must run inside the run's transaction")
    locked = WorkspaceBudget.objects.filter(workspace=workspace).update(updated_at=timezone.now())
    if not locked:
        return
    budget = WorkspaceBudget.objects.select_for_update().get(workspace=workspace)
    amount = estimate or ZERO
    checks: list[tuple[Decimal | None, User | None, str]] = [
        (budget.monthly_usd, None, "the workspace's")
    ]
    if user is not None:
        checks.append((member_cap(budget, workspace, user)[0], user, "your"))
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


def unpriced_models(config: dict[str, Any]) -> list[str]:
    """Every model a run of ``config`` could call that has no price (fallbacks included; the
    judge only when there is more than one answer to judge, as in the estimate)."""
    spec = spec_dict_of(config)
    members = spec.get("members") or []
    models = [m["model"] for m in members]
    models += [f for m in members for f in m.get("fallback_models") or []]
    if spec.get("judge") and len(members) > 1:
        models.append(spec["judge"]["model"])
    prices = price_table()
    return sorted({m for m in models if price_for(m, prices) is None})


def budget_refuse_unpriced(run: Run) -> None:
    """Refuse (``ServiceError``, code ``budget_unpriced``) a new run that could call an unpriced
    model while a monthly cap applies to it (the workspace's or its author's)."""
    budget = WorkspaceBudget.objects.filter(workspace_id=run.workspace_id).first()
    if budget is None:
        return
    capped = budget.monthly_usd is not None or (
        run.created_by_id is not None
        and member_cap(budget, run.workspace, run.created_by_id)[0] is not None
    )
    if not capped:
        return
    missing = unpriced_models(run.config or {})
    if missing:
        names = ", ".join(missing)
        raise ServiceError(
            f"No price is set for {names}, so a monthly budget cannot count what it costs. "
            "An admin can add a price (0 for a free local model) to the price table.",
            field="prompt",
            code="budget_unpriced",
        )


def refuse_unpriced_on_create(
    sender: type[Run], instance: Run, raw: bool = False, **_: Any
) -> None:
    """``pre_save`` receiver for runs (connected in ``apps``): new rows only, and only those
    that will call providers (a copy is made already ended)."""
    if raw or not instance._state.adding or instance.is_terminal:
        return
    budget_refuse_unpriced(instance)
