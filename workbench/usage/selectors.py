"""Reads for the usage page, the CSV export and ``/metrics``: provider calls grouped every way
they are shown. Every query of the page starts from the workspace.

"Provider" is the kind of provider (OpenAI, Anthropic, Gemini, OpenRouter, …); the credential
— a workspace's own label for a set of keys — is a breakdown of its own. A call record names
its credential by label only, so its kind comes from the run's candidate with that label (the
kind frozen with the pool), else from the workspace's credential of that label (a judge-only
credential), else it is unknown.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from fusion.providers.registry import PROVIDER_KINDS
from workbench.accounts.models import Membership, Workspace
from workbench.keys.models import Credential
from workbench.runs.models import CallStatus, Candidate, ProviderCall
from workbench.usage.budgets import BudgetState, cap_of, used_by_member
from workbench.usage.models import MemberBudget, WorkspaceBudget

ZERO = Decimal(0)
UNKNOWN_KIND = "other"


@dataclass(frozen=True)
class Range:
    start: date
    end: date  # inclusive

    @property
    def bounds(self) -> tuple[datetime, datetime]:
        tz = timezone.get_current_timezone()
        low = datetime.combine(self.start, time.min, tzinfo=tz)
        return low, datetime.combine(self.end + timedelta(days=1), time.min, tzinfo=tz)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def default_range(today: date | None = None) -> Range:
    today = today or timezone.localdate()
    return Range(today - timedelta(days=29), today)


def provider_kind() -> Coalesce:
    """The provider kind of a ``ProviderCall`` row, as an SQL expression (see the module)."""
    of_candidate = (
        Candidate.objects.filter(run_id=OuterRef("run_id"), provider=OuterRef("provider"))
        .exclude(provider_kind="")
        .values("provider_kind")[:1]
    )
    of_credential = Credential.objects.filter(
        workspace_id=OuterRef("run__workspace_id"), label=OuterRef("provider")
    ).values("provider")[:1]
    return Coalesce(Subquery(of_candidate), Subquery(of_credential), Value(UNKNOWN_KIND))


def kind_label(kind: str) -> str:
    spec = PROVIDER_KINDS.get(kind)
    return spec.label if spec is not None else "Other"


def calls_in(workspace: Workspace, span: Range) -> QuerySet[ProviderCall]:
    """The workspace's calls in the range, each with its provider ``kind``."""
    low, high = span.bounds
    return ProviderCall.objects.filter(
        run__workspace=workspace, created_at__gte=low, created_at__lt=high
    ).annotate(kind=provider_kind())


@dataclass(frozen=True)
class Group:
    label: str
    cost: Decimal
    calls: int
    input_tokens: int
    output_tokens: int
    unpriced: int = 0  # calls that used tokens but have no price: not in ``cost``, never $0


# A call that spent tokens but has no cost: its model is unpriced (a failed call before any
# token has no cost because it cost nothing).
UNPRICED = Q(cost__isnull=True) & (Q(input_tokens__gt=0) | Q(output_tokens__gt=0))


def spend_by(
    calls: QuerySet[ProviderCall], field: str, labels: Callable[[Any], str] | None = None
) -> list[Group]:
    """Spend grouped by ``field``; ``labels`` (a function) names each key for display."""
    rows = (
        calls.values(key=F(field))
        .annotate(  # not "cost=": the alias would shadow the field UNPRICED filters on
            spent=Sum("cost"),
            n=Count("id"),
            i=Sum("input_tokens"),
            o=Sum("output_tokens"),
            u=Count("id", filter=UNPRICED),
        )
        .order_by()
    )
    name = labels or (lambda key: str(key or "—"))
    groups = [
        Group(name(r["key"]), r["spent"] or ZERO, r["n"], r["i"] or 0, r["o"] or 0, r["u"])
        for r in rows
    ]
    return sorted(groups, key=lambda g: (-g.cost, -g.calls, g.label))


def spend_by_day(calls: QuerySet[ProviderCall], span: Range) -> list[tuple[date, Decimal]]:
    tz = timezone.get_current_timezone()
    rows = (
        calls.annotate(day=TruncDate("created_at", tzinfo=tz))
        .values("day")
        .annotate(cost=Sum("cost"))
        .order_by()
    )
    by_day = {r["day"]: r["cost"] or ZERO for r in rows}
    return [(day, by_day.get(day, ZERO)) for day in span.days]


def _percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``q`` of them at or below."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q * len(ordered) - 1e-9)  # the epsilon: 0.95 * 20 is 19.000000000000004
    return ordered[min(max(rank, 1), len(ordered)) - 1]


@dataclass(frozen=True)
class ModelStats:
    provider: str  # the provider kind's name
    model: str
    calls: int
    failed: int
    latency_p50: float | None
    latency_p95: float | None
    ttft_p50: float | None
    ttft_p95: float | None

    @property
    def error_rate(self) -> float:
        return self.failed / self.calls if self.calls else 0.0


# Percentiles are computed here rather than in SQL (SQLite has none); this bounds the work.
MAX_LATENCY_ROWS = 100_000


def model_stats(calls: QuerySet[ProviderCall]) -> list[ModelStats]:
    """Latency and TTFT percentiles of successful calls, and failures, per provider and model."""
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    ttfts: dict[tuple[str, str], list[float]] = defaultdict(list)
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = calls.values_list("kind", "model", "status", "latency_ms", "ttft_ms")
    for kind, model, status, latency, ttft in rows[:MAX_LATENCY_ROWS]:
        key = (kind_label(kind), model)
        totals[key][0] += 1
        if status == CallStatus.FAILED:
            totals[key][1] += 1
        elif status == CallStatus.OK:
            latencies[key].append(latency)
            if ttft is not None:
                ttfts[key].append(ttft)
    stats = [
        ModelStats(
            provider=key[0],
            model=key[1],
            calls=n,
            failed=failed,
            latency_p50=_percentile(latencies[key], 0.5),
            latency_p95=_percentile(latencies[key], 0.95),
            ttft_p50=_percentile(ttfts[key], 0.5),
            ttft_p95=_percentile(ttfts[key], 0.95),
        )
        for key, (n, failed) in totals.items()
    ]
    return sorted(stats, key=lambda s: (-s.calls, s.provider, s.model))


def provider_errors(stats: Iterable[ModelStats]) -> list[tuple[str, int, int, float]]:
    """(provider, calls, failed, rate) from the per-model stats."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for s in stats:
        totals[s.provider][0] += s.calls
        totals[s.provider][1] += s.failed
    return sorted(
        ((p, n, f, f / n if n else 0.0) for p, (n, f) in totals.items()),
        key=lambda row: (-row[3], row[0]),
    )


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    groups: list[Group]


@dataclass(frozen=True)
class UsageSummary:
    total: Decimal
    calls: int
    tokens: int
    unpriced_calls: int
    by_day: list[tuple[date, Decimal]]
    sections: list[Section]
    stats: list[ModelStats]
    provider_errors: list[tuple[str, int, int, float]]


def usage_summary(workspace: Workspace, span: Range) -> UsageSummary:
    calls = calls_in(workspace, span)
    by_model = spend_by(calls, "model")
    stats = model_stats(calls)
    return UsageSummary(
        total=sum((g.cost for g in by_model), ZERO),
        calls=sum(g.calls for g in by_model),
        tokens=sum(g.input_tokens + g.output_tokens for g in by_model),
        unpriced_calls=sum(g.unpriced for g in by_model),
        by_day=spend_by_day(calls, span),
        sections=[
            Section("model", "By model", by_model),
            Section("provider", "By provider", spend_by(calls, "kind", kind_label)),
            Section("credential", "By credential", spend_by(calls, "provider")),
            Section("pool", "By pool", spend_by(calls, "run__pool_name")),
            Section("user", "By member", spend_by(calls, "run__created_by__username")),
        ],
        stats=stats,
        provider_errors=provider_errors(stats),
    )


@dataclass(frozen=True)
class MemberBudgetRow:
    user_id: int
    username: str
    role: str
    state: BudgetState


def member_budgets(workspace: Workspace) -> list[MemberBudgetRow]:
    """Every member's cap (their own or the default), spend this month and what is left."""
    budget = WorkspaceBudget.objects.filter(workspace=workspace).first()
    own = dict(  # every member's own cap in one query, not one query per member
        MemberBudget.objects.filter(workspace=workspace).values_list("user_id", "monthly_usd")
    )
    used = used_by_member(workspace)
    rows = []
    memberships = Membership.objects.filter(workspace=workspace).select_related("user")
    for m in memberships.order_by("user__username"):
        cap, custom = cap_of(budget, own.get(m.user_id))
        spent, reserved = used.get(m.user_id, (ZERO, ZERO))
        state = BudgetState(cap=cap, spent=spent, reserved=reserved, custom=custom)
        rows.append(MemberBudgetRow(m.user_id, m.user.username, m.get_role_display(), state))
    return rows


CSV_FIELDS = [
    "created_at", "run_id", "pool", "user", "source", "candidate", "phase", "provider",
    "credential", "model", "status", "input_tokens", "output_tokens", "tokens_estimated",
    "cost_usd", "latency_ms", "ttft_ms", "attempts",
]  # fmt: skip


def csv_rows(calls: QuerySet[ProviderCall]) -> Iterable[list[Any]]:
    rows = calls.select_related("run", "run__created_by").order_by("created_at", "id")
    for c in rows.iterator(chunk_size=2000):
        user = c.run.created_by
        yield [
            c.created_at.isoformat(), str(c.run_id), c.run.pool_name,
            user.username if user else "", c.run.source, c.candidate, c.phase, c.kind,
            c.provider, c.model, c.status, c.input_tokens, c.output_tokens, c.tokens_estimated,
            "" if c.cost is None else format(c.cost, "f"), round(c.latency_ms, 1),
            "" if c.ttft_ms is None else round(c.ttft_ms, 1), c.attempts,
        ]  # fmt: skip
