"""``/metrics`` in the Prometheus text format (0.0.4), aggregated from the database at scrape
time: runs by status and source, provider calls, tokens, cost, and latency / TTFT histograms.

Labels are the provider kind (``openai``, ``anthropic``, ``gemini``, ``openrouter``, …) and the
model, summed over every workspace. No credential labels and no workspace names: those are
tenants' own words (a label may name a customer or a person), one scrape would hand all of them
to whoever holds the metrics token, and a series per workspace and credential would grow
without bound. Per-workspace figures are on each workspace's usage page.

Counters never go down because records are never deleted except with their workspace.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Q, QuerySet, Sum

from workbench.runs.models import ProviderCall, Run
from workbench.usage.selectors import provider_kind

# Seconds; LLM calls range from tens of milliseconds (cached, simulated) to minutes.
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}" if inner else ""


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _calls() -> QuerySet[ProviderCall]:
    return ProviderCall.objects.annotate(kind=provider_kind())


def _histogram(name: str, field: str, help_text: str) -> list[str]:
    lines = _family(name, "histogram", help_text)
    aggregates = {
        f"b{i}": Count("id", filter=Q(**{f"{field}__lte": b * 1000})) for i, b in enumerate(BUCKETS)
    }
    rows = (
        _calls()
        .filter(**{f"{field}__isnull": False}, status="ok")
        .values("kind", "model")
        .annotate(n=Count("id"), total=Sum(field), **aggregates)
        .order_by("kind", "model")
    )
    for r in rows:
        base = {"provider": r["kind"], "model": r["model"]}
        for i, bound in enumerate(BUCKETS):
            lines.append(f"{name}_bucket{_labels(**base, le=f'{bound:g}')} {r[f'b{i}']}")
        lines.append(f"{name}_bucket{_labels(**base, le='+Inf')} {r['n']}")
        lines.append(f"{name}_sum{_labels(**base)} {(r['total'] or 0) / 1000:.6f}")
        lines.append(f"{name}_count{_labels(**base)} {r['n']}")
    return lines


def metrics_text() -> str:
    lines: list[str] = []
    lines += _family("fusion_runs_total", "counter", "Runs by status and source.")
    for r in (
        Run.objects.values("status", "source").annotate(n=Count("id")).order_by("status", "source")
    ):
        lines.append(f"fusion_runs_total{_labels(status=r['status'], source=r['source'])} {r['n']}")

    rows = list(
        _calls()
        .values("kind", "model", "status")
        .annotate(n=Count("id"), i=Sum("input_tokens"), o=Sum("output_tokens"), c=Sum("cost"))
        .order_by("kind", "model", "status")
    )
    lines += _family("fusion_provider_calls_total", "counter", "Provider calls by outcome.")
    for r in rows:
        labels = _labels(provider=r["kind"], model=r["model"], status=r["status"])
        lines.append(f"fusion_provider_calls_total{labels} {r['n']}")
    lines += _family("fusion_tokens_total", "counter", "Tokens by direction.")
    lines += _token_lines(rows)
    lines += _family("fusion_cost_usd_total", "counter", "What priced calls cost, in USD.")
    cost: dict[tuple[str, str], float] = {}
    for r in rows:
        key = (r["kind"], r["model"])
        cost[key] = cost.get(key, 0.0) + float(r["c"] or 0)
    lines += [
        f"fusion_cost_usd_total{_labels(provider=p, model=m)} {value:.10f}"
        for (p, m), value in cost.items()
    ]
    lines += _histogram("fusion_call_latency_seconds", "latency_ms", "Provider call latency.")
    lines += _histogram("fusion_call_ttft_seconds", "ttft_ms", "Time to the first token.")
    return "\n".join(lines) + "\n"


def _token_lines(rows: Iterable[dict]) -> list[str]:  # type: ignore[type-arg]
    totals: dict[tuple[str, str, str], int] = {}
    for r in rows:
        for direction, key in (("input", "i"), ("output", "o")):
            k = (r["kind"], r["model"], direction)
            totals[k] = totals.get(k, 0) + (r[key] or 0)
    return [
        f"fusion_tokens_total{_labels(provider=p, model=m, direction=d)} {n}"
        for (p, m, d), n in totals.items()
    ]
