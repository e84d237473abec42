"""The results of an experiment: per-arm summaries, paired comparisons, the headline, the
accuracy-against-cost chart (inline SVG drawn here, no JavaScript, no CDN) and the exports.

Accuracy counts every graded item; an item whose run failed counts as wrong (an arm that fails
often must not look better for it); human-graded items (and answers the judge could not
grade) are left out until people grade them. Pairwise tests are corrected for their number
(Holm–Bonferroni) before any arm is called better.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from decimal import Decimal
from itertools import combinations
from typing import Any

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from workbench.experiments.models import Arm, ArmKind, Experiment, ItemResult, ItemStatus
from workbench.experiments.selectors import results_of
from workbench.experiments.stats import (
    SIGNIFICANCE,
    PairedComparison,
    compare_paired,
    holm_adjust,
    percentile,
    wilson_interval,
)


@dataclass(frozen=True)
class ArmSummary:
    arm: Arm
    items: int
    graded: int
    correct: int
    ungraded: int  # answered, waiting for people
    failed: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    cost_per_item: Decimal | None
    total_cost: Decimal
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class Comparison:
    a: Arm
    b: Arm
    paired: PairedComparison
    # The McNemar p-value adjusted (Holm–Bonferroni) over every pair of the experiment.
    p_adjusted: float = 1.0

    @property
    def significant(self) -> bool:
        return self.paired.n > 0 and self.p_adjusted < SIGNIFICANCE

    @property
    def better(self) -> Arm | None:
        """The arm that is significantly better after the correction, or None."""
        if not self.significant:
            return None
        return self.a if self.paired.only_a > self.paired.only_b else self.b


@dataclass(frozen=True)
class Results:
    arms: list[ArmSummary]
    comparisons: list[Comparison]
    headline: str
    headline_significant: bool
    rows: list[tuple[Any, list[ItemResult | None]]]  # (item, results by arm position)

    @property
    def any_paired(self) -> bool:
        return any(c.paired.n for c in self.comparisons)

    @property
    def tests(self) -> int:
        """How many pairwise tests the correction adjusted for."""
        return sum(1 for c in self.comparisons if c.paired.n)

    @property
    def awaiting(self) -> int:
        """Answers that wait for people to grade, over all arms."""
        return sum(s.ungraded for s in self.arms)


def _summary(arm: Arm, results: list[ItemResult]) -> ArmSummary:
    graded = [r for r in results if r.correct is not None]
    correct = sum(1 for r in graded if r.correct)
    costs = [r.cost for r in results if r.cost is not None]
    latencies = [
        r.latency_ms for r in results if r.status == ItemStatus.DONE and r.latency_ms is not None
    ]
    interval = wilson_interval(correct, len(graded))
    return ArmSummary(
        arm=arm,
        items=len(results),
        graded=len(graded),
        correct=correct,
        ungraded=sum(1 for r in results if r.status == ItemStatus.DONE and r.correct is None),
        failed=sum(1 for r in results if r.status == ItemStatus.FAILED),
        accuracy=correct / len(graded) if graded else None,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        cost_per_item=sum(costs, Decimal(0)) / len(costs) if costs else None,
        total_cost=sum(costs, Decimal(0)),
        p50_ms=percentile(latencies, 50),
        p95_ms=percentile(latencies, 95),
    )


def _paired(a: list[ItemResult], b: list[ItemResult], *, bootstrap: bool) -> PairedComparison:
    pairs = [
        (x.correct, y.correct)
        for x, y in zip(a, b, strict=True)
        if x.correct is not None and y.correct is not None
    ]
    return compare_paired(
        [bool(x) for x, _ in pairs], [bool(y) for _, y in pairs], bootstrap=bootstrap
    )


def _rank(summary: ArmSummary) -> tuple[float, Decimal]:
    """Best first: the highest accuracy, then the cheapest."""
    return (summary.accuracy or 0.0, -(summary.cost_per_item or Decimal(0)))


def _versus(
    pool: ArmSummary, rivals: list[ArmSummary], what: str, comparisons: list[Comparison]
) -> tuple[str, bool]:
    """One sentence on fusion against the best of ``rivals``; a winner only when p < 0.05."""
    best = max(rivals, key=_rank)
    found = next((c for c in comparisons if {c.a.pk, c.b.pk} == {pool.arm.pk, best.arm.pk}), None)
    if found is None or found.paired.n == 0:
        return "", False
    p, n = found.paired.p_value, found.paired.n
    tests = sum(1 for c in comparisons if c.paired.n)
    # Every claim names both p-values: the raw one, and the one adjusted for all the pairs.
    holm = (
        f"Holm-adjusted p = {found.p_adjusted:.3g} over {tests} pairwise tests"
        if tests > 1
        else "the only pairwise test, so nothing to correct for"
    )
    if found.better == pool.arm:
        return (
            f"Fusion ({pool.arm.label}) beats the best {what} ({best.arm.label}) on this "
            f"dataset: {pool.accuracy:.0%} vs {best.accuracy:.0%}, exact McNemar "
            f"p = {p:.3g} over {n} paired items ({holm}).",
            True,
        )
    if found.better == best.arm:
        return (
            f"The best {what} ({best.arm.label}) beats fusion ({pool.arm.label}) on this "
            f"dataset: {best.accuracy:.0%} vs {pool.accuracy:.0%}, exact McNemar p = {p:.3g} "
            f"({holm}).",
            True,
        )
    corrected = (
        " — below 0.05 alone, but not once corrected for the multiple comparisons"
        if p < SIGNIFICANCE
        else ""
    )
    return (
        f"No significant difference between fusion ({pool.arm.label}, {pool.accuracy:.0%}) and "
        f"the best {what} ({best.arm.label}, {best.accuracy:.0%}): exact McNemar "
        f"p = {p:.3g} over {n} paired items, {holm}{corrected} (significant below "
        f"{SIGNIFICANCE}{' after the correction' if tests > 1 else ''}). More items, or a "
        "bigger difference, would be needed to tell them apart.",
        False,
    )


def _headline(summaries: list[ArmSummary], comparisons: list[Comparison]) -> tuple[str, bool]:
    """Whether fusion beat the best single model, and repeated sampling of one model; said
    only when the test says so."""
    graded = [s for s in summaries if s.accuracy is not None]
    fused = [s for s in graded if s.arm.kind == ArmKind.POOL]
    if not fused:
        return "", False
    solos = [s for s in graded if s.arm.kind == ArmKind.SOLO]
    sampled = [s for s in graded if s.arm.kind in (ArmKind.SELF_CONSISTENCY, ArmKind.SELF_FUSION)]
    # With several pools or modes, the best of them speaks for fusion.
    best_fused = max(fused, key=_rank)
    sentences, significant = [], False
    for rivals, what in ((solos, "single model"), (sampled, "repeated sampling of one model")):
        if rivals:
            sentence, won = _versus(best_fused, rivals, what, comparisons)
            if sentence:
                sentences.append(sentence)
                significant = significant or won
    return " ".join(sentences), significant


def experiment_results(experiment: Experiment, *, bootstrap: bool | None = None) -> Results:
    """Everything the results page shows. The bootstrap intervals cost the most, so by default
    they wait until the experiment has ended (the live page polls every 2 s)."""
    bootstrap = experiment.has_ended if bootstrap is None else bootstrap
    arms = list(experiment.arms.order_by("position"))
    by_arm: dict[int, list[ItemResult]] = {arm.pk: [] for arm in arms}
    rows: dict[int, tuple[Any, list[ItemResult | None]]] = {}
    for result in results_of(experiment):
        by_arm[result.arm_id].append(result)
        item_row = rows.setdefault(result.item_id, (result.item, [None] * len(arms)))
        item_row[1][result.arm.position] = result
    summaries = [_summary(arm, by_arm[arm.pk]) for arm in arms]
    paired = [
        (a, b, _paired(by_arm[a.pk], by_arm[b.pk], bootstrap=bootstrap))
        for a, b in combinations(arms, 2)
    ]
    # The family is every pair with something to compare (a pair with no paired items is no
    # test, and would only dilute the correction).
    tested = [i for i, (_, _, p) in enumerate(paired) if p.n]
    adjusted = dict(zip(tested, holm_adjust([paired[i][2].p_value for i in tested]), strict=True))
    comparisons = [Comparison(a, b, p, adjusted.get(i, 1.0)) for i, (a, b, p) in enumerate(paired)]
    headline, significant = _headline(summaries, comparisons)
    return Results(
        arms=summaries,
        comparisons=comparisons,
        headline=headline,
        headline_significant=significant,
        rows=sorted(rows.values(), key=lambda row: row[0].position),
    )


# --- the chart ----------------------------------------------------------------------------------

_W, _H = 640, 300
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 24, 16, 44
_COLORS = ["#4f46e5", "#0891b2", "#16a34a", "#d97706", "#db2777", "#7c3aed", "#dc2626", "#475569"]


def _money(value: float) -> str:
    return f"${value:.4f}" if value < 1 else f"${value:.2f}"


def accuracy_cost_svg(summaries: list[ArmSummary]) -> SafeString:
    """A scatter of accuracy (with its 95 % interval) against cost per item, one dot per arm."""
    points = [s for s in summaries if s.accuracy is not None and s.cost_per_item is not None]
    if not points:
        return mark_safe("")
    costs = [float(s.cost_per_item) for s in points]  # type: ignore[arg-type]
    top = max(costs) * 1.15 or 1.0
    plot_w, plot_h = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def x(cost: float) -> float:
        return _LEFT + plot_w * cost / top

    def y(accuracy: float) -> float:
        return _TOP + plot_h * (1 - accuracy)

    parts = [
        f'<svg class="exp-chart" viewBox="0 0 {_W} {_H}" role="img" '
        'aria-label="Accuracy against cost per item, one point per arm" data-testid="chart">'
    ]
    for tick in (0, 0.25, 0.5, 0.75, 1):
        parts.append(
            f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            'class="grid"/>'
            f'<text x="{_LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.0%}</text>'
        )
    # Enough decimals that the five ticks differ, however small the costs are.
    places = max(2, 1 - math.floor(math.log10(top / 4)))
    for i in range(5):
        value = top * i / 4
        parts.append(
            f'<text x="{x(value):.1f}" y="{_H - _BOTTOM + 18}" text-anchor="middle">'
            f"${value:.{places}f}</text>"
        )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{_H - 6}" text-anchor="middle" class="axis">'
        "cost per item</text>"
        f'<text x="14" y="{_TOP + plot_h / 2:.1f}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})">accuracy</text>'
    )
    placed: list[tuple[float, float]] = []
    for s in points:
        color = _COLORS[s.arm.position % len(_COLORS)]
        cx, cy = x(float(s.cost_per_item)), y(s.accuracy)  # type: ignore[arg-type]
        low, high = y(s.ci_low or 0), y(s.ci_high or 0)
        title = escape(
            f"{s.arm.position + 1}. {s.arm.label}: {s.accuracy:.0%} "
            f"(95% CI {s.ci_low:.0%}–{s.ci_high:.0%}), "
            f"{_money(float(s.cost_per_item))} per item"  # type: ignore[arg-type]
        )
        # Arms are numbered as in the tables; a number placed where another already stands
        # moves right, so arms with equal results stay readable (the dot itself never moves).
        lx, ly = cx + 10, max(_TOP + 10, cy - 8)
        while any(abs(lx - px) < 14 and abs(ly - py) < 12 for px, py in placed):
            lx += 14
        placed.append((lx, ly))
        parts.append(
            f'<g class="pt"><title>{title}</title>'
            f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{low:.1f}" y2="{high:.1f}" '
            f'stroke="{color}" class="ci"/>'
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color}"/>'
            f'<text x="{lx:.1f}" y="{ly:.1f}" class="label" style="fill: {color}">'
            f"{s.arm.position + 1}</text></g>"
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every text is escaped above


# --- exports ------------------------------------------------------------------------------------

CSV_COLUMNS = [
    "item",
    "prompt",
    "expected",
    "checker",
    "arm",
    "arm_kind",
    "status",
    "correct",
    "extracted",
    "answer",
    "detail",
    "cost_usd",
    "latency_ms",
    "run_id",
    "graded_by",
    "grade_note",
    "grade_cost_usd",
    "grade_run_id",
]


def _row(result: ItemResult) -> dict[str, Any]:
    return {
        "item": result.item.position + 1,
        "prompt": result.item.prompt,
        "expected": result.item.expected,
        "checker": result.item.checker,
        "arm": result.arm.label,
        "arm_kind": result.arm.kind,
        "status": result.status,
        "correct": result.correct,
        "extracted": result.extracted,
        "answer": result.answer,
        "detail": result.detail,
        "cost_usd": str(result.cost) if result.cost is not None else None,
        "latency_ms": result.latency_ms,
        "run_id": str(result.run_id) if result.run_id else None,
        # A person's grade, and the judge (rubric) grading call.
        "graded_by": result.graded_by.username if result.graded_by else None,
        "grade_note": result.grade_note,
        "grade_cost_usd": str(result.grade_cost) if result.grade_cost is not None else None,
        "grade_run_id": str(result.grade_run_id) if result.grade_run_id else None,
    }


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell that starts like a formula would run in a spreadsheet (CSV injection); a plain
    # number such as -3 or +1.5e-4 is a number to a spreadsheet, and stays one.
    if text[:1] in _FORMULA_TRIGGERS and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def results_csv(experiment: Experiment) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for result in results_of(experiment):
        row = _row(result)
        writer.writerow([_csv_cell(row[c]) for c in CSV_COLUMNS])
    return out.getvalue()


def _f(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def results_json(experiment: Experiment) -> dict[str, Any]:
    results = experiment_results(experiment)
    return {
        "experiment": {
            "id": experiment.pk,
            "name": experiment.name,
            "status": experiment.status,
            "dataset": {"id": experiment.dataset_id, "name": experiment.dataset.name},
            "estimated_cost_usd": str(experiment.estimated_cost),
            "budget_usd": str(experiment.budget_usd) if experiment.budget_usd else None,
        },
        "headline": results.headline,
        "correction": "holm-bonferroni",
        "awaiting_grading": results.awaiting,
        "arms": [
            {
                "id": s.arm.pk,
                "label": s.arm.label,
                "kind": s.arm.kind,
                "items": s.items,
                "graded": s.graded,
                "correct": s.correct,
                "ungraded": s.ungraded,
                "failed": s.failed,
                "accuracy": _f(s.accuracy),
                "accuracy_ci95": [_f(s.ci_low), _f(s.ci_high)] if s.ci_low is not None else None,
                "cost_per_item_usd": str(s.cost_per_item) if s.cost_per_item is not None else None,
                "total_cost_usd": str(s.total_cost),
                "latency_p50_ms": _f(s.p50_ms),
                "latency_p95_ms": _f(s.p95_ms),
            }
            for s in results.arms
        ],
        "comparisons": [
            {
                "a": c.a.pk,
                "b": c.b.pk,
                "paired_items": c.paired.n,
                "only_a_correct": c.paired.only_a,
                "only_b_correct": c.paired.only_b,
                "mcnemar_p": _f(c.paired.p_value),
                "mcnemar_p_holm": _f(c.p_adjusted),
                "accuracy_diff": _f(c.paired.diff),
                "accuracy_diff_ci95": [_f(c.paired.diff_low), _f(c.paired.diff_high)]
                if c.paired.diff_low is not None
                else None,
                "significant": c.significant,
            }
            for c in results.comparisons
        ],
        "items": [_row(r) for r in results_of(experiment)],
    }
