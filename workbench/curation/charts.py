"""Horizontal bar charts drawn on the server as plain numbers for an inline SVG: no script,
no chart library. Each bar may carry a 95% interval drawn as a whisker."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workbench.curation.analysis import AgreementRow
from workbench.curation.stats import Standing

LABEL_W = 180
PLOT_W = 420
ROW_H = 26
BAR_H = 14
PAD = 8


@dataclass(frozen=True)
class Bar:
    label: str
    value_text: str
    y: float
    width: float
    low: float
    high: float
    text_y: float
    whisker_y: float


@dataclass(frozen=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    label_w: int
    plot_w: int
    ticks: list[tuple[float, str]]
    axis_y: float


def _chart(rows: Sequence[tuple[str, float, float, float, str]], top: float, ticks: int) -> Chart:
    scale = PLOT_W / top if top > 0 else 0.0
    bars = []
    for i, (label, value, low, high, text) in enumerate(rows):
        y = PAD + i * ROW_H
        bars.append(
            Bar(
                label=label if len(label) <= 28 else label[:27] + "…",
                value_text=text,
                y=y,
                width=max(0.0, value * scale),
                low=LABEL_W + low * scale,
                high=LABEL_W + high * scale,
                text_y=y + BAR_H - 2,
                whisker_y=y + BAR_H / 2,
            )
        )
    axis_y = PAD + len(rows) * ROW_H
    tick_list = [(LABEL_W + PLOT_W * k / ticks, f"{top * k / ticks:.3g}") for k in range(ticks + 1)]
    return Chart(
        bars=bars,
        width=LABEL_W + PLOT_W + 70,
        height=int(axis_y + 24),
        label_w=LABEL_W,
        plot_w=PLOT_W,
        ticks=tick_list,
        axis_y=axis_y,
    )


def agreement_chart(rows: Sequence[AgreementRow]) -> Chart:
    """Agreement rates from 0 to 100%, with their Wilson intervals."""
    data = [
        (
            r.name,
            100 * (r.stats.rate or 0),
            100 * r.stats.low,
            100 * r.stats.high,
            f"{round(100 * (r.stats.rate or 0))}% of {r.stats.total}",
        )
        for r in rows
    ]
    chart = _chart(data, 100.0, 4)
    return Chart(
        bars=chart.bars,
        width=chart.width,
        height=chart.height,
        label_w=chart.label_w,
        plot_w=chart.plot_w,
        ticks=[(x, f"{text}%") for x, text in chart.ticks],
        axis_y=chart.axis_y,
    )


def leaderboard_chart(standings: Sequence[Standing]) -> Chart:
    """Bradley-Terry strengths (1 = an average model), with bootstrap intervals."""
    top = max([s.high for s in standings] + [s.score for s in standings] + [1.0])
    data = [(s.name, s.score, s.low, s.high, f"{s.score:.2f}") for s in standings]
    return _chart(data, top * 1.05, 4)
