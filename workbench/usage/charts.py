"""Bar charts drawn on the server as inline SVG: no chart library, no JavaScript."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal


@dataclass(frozen=True)
class Bar:
    label: str
    value: Decimal
    text: str  # the value as shown
    pct: float  # of the largest bar, 0..100


def bars(items: list[tuple[str, Decimal, int]], *, limit: int = 12) -> list[Bar]:
    """Horizontal bars, largest first; ``(label, cost, unpriced calls)``. Calls without a
    price are said so ("unpriced"), never drawn or written as $0."""
    items = items[:limit]
    top = max((v for _, v, _ in items), default=Decimal(0))
    return [
        Bar(
            label,
            value,
            priced_money(value, unpriced),
            float(value / top * 100) if top > 0 else 0.0,
        )
        for label, value, unpriced in items
    ]


def priced_money(value: Decimal, unpriced: int) -> str:
    """``$0.0150``, ``$0.0150 + unpriced`` or ``unpriced``."""
    if not unpriced:
        return money(value)
    return f"{money(value)} + unpriced" if value else "unpriced"


@dataclass(frozen=True)
class Column:
    day: date
    value: Decimal
    text: str
    x: float
    y: float
    height: float


@dataclass(frozen=True)
class DayChart:
    columns: list[Column]
    width: int
    height: int
    bar_width: float
    top: str  # the scale's maximum, shown on the axis


def day_chart(
    series: list[tuple[date, Decimal]], *, width: int = 720, height: int = 140
) -> DayChart:
    top = max((v for _, v in series), default=Decimal(0))
    slot = width / max(len(series), 1)
    bar_width = max(slot * 0.7, 1.0)
    columns = []
    for i, (day, value) in enumerate(series):
        h = float(value / top) * (height - 4) if top > 0 else 0.0
        h = max(h, 1.0) if value > 0 else 0.0
        columns.append(
            Column(day, value, money(value), i * slot + (slot - bar_width) / 2, height - h, h)
        )
    return DayChart(columns, width, height, bar_width, money(top))


def money(value: Decimal) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    if value >= 1:
        return f"${value:,.2f}"
    return f"${value:.4f}"
