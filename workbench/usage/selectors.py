"""Reads for the usage page and the CSV export: provider calls of one workspace in a date range,
grouped every way the page shows them. Every query starts from the workspace."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from workbench.accounts.models import Workspace
from workbench.runs.models import CallStatus, ProviderCall

ZERO = Decimal(0)


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


def calls_in(workspace: Workspace, span: Range) -> QuerySet[ProviderCall]:
    low, high = span.bounds
    return ProviderCall.objects.filter(
        run__workspace=workspace, created_at__gte=low, created_at__lt=high
    )


@dataclass(frozen=True)
class Group:
    label: str
    cost: Decimal
    calls: int
    input_tokens: int
    output_tokens: int


def spend_by(calls: QuerySet[ProviderCall], field: str) -> list[Group]:
    rows = (
        calls.values(key=F(field))
        .annotate(cost=Sum("cost"), n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"))
        .order_by()
    )
    groups = [
        Group(str(r["key"] or "—"), r["cost"] or ZERO, r["n"], r["i"] or 0, r["o"] or 0)
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
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass(frozen=True)
class ModelStats:
    provider: str
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
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    ttfts: dict[tuple[str, str], list[float]] = defaultdict(list)
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    rows = calls.values_list("provider", "model", "status", "latency_ms", "ttft_ms")
    for provider, model, status, latency, ttft in rows[:MAX_LATENCY_ROWS]:
        key = (provider, model)
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


CSV_FIELDS = [
    "created_at", "run_id", "pool", "user", "source", "candidate", "phase", "provider", "model",
    "status", "input_tokens", "output_tokens", "tokens_estimated", "cost_usd", "latency_ms",
    "ttft_ms", "attempts",
]  # fmt: skip


def csv_rows(calls: QuerySet[ProviderCall]) -> Iterable[list[Any]]:
    rows = calls.select_related("run", "run__created_by").order_by("created_at", "id")
    for c in rows.iterator(chunk_size=2000):
        user = c.run.created_by
        yield [
            c.created_at.isoformat(), str(c.run_id), c.run.pool_name,
            user.username if user else "", c.run.source, c.candidate, c.phase, c.provider,
            c.model, c.status, c.input_tokens, c.output_tokens, c.tokens_estimated,
            "" if c.cost is None else format(c.cost, "f"), round(c.latency_ms, 1),
            "" if c.ttft_ms is None else round(c.ttft_ms, 1), c.attempts,
        ]  # fmt: skip
