"""How run numbers read on the pages: money, durations, tokens, status badges.

``static/js/run.js`` formats live updates the same way (``usd``, ``duration``); keep them alike.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()

BADGE = {
    "queued": "badge-queued",
    "running": "badge-running",
    "streaming": "badge-running",
    "retrying": "badge-warning",
    "waiting": "badge-queued",
    "finished": "badge-finished",
    "done": "badge-finished",
    "ok": "badge-finished",
    "finished_without_verdict": "badge-warning",
    "failed": "badge-failed",
    "cancelled": "badge-cancelled",
    "skipped": "badge",
    "none": "badge",
}


def format_usd(value: Any) -> str:
    """$1.23, $0.0123, $0.000123 — enough digits to tell small costs apart, none beyond."""
    if value is None or value == "":
        return "unpriced"
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return "unpriced"
    if amount == 0:
        return "$0.00"
    places = 2 if abs(amount) >= 1 else 4 if abs(amount) >= Decimal("0.01") else 6
    text = f"{amount:.{places}f}"
    if places > 2:
        text = text.rstrip("0")
        whole, _, frac = text.partition(".")
        text = f"{whole}.{frac.ljust(2, '0')}"
    return f"${text}"


@register.filter
def usd(value: Any) -> str:
    return format_usd(value)


@register.filter
def duration(value: Any) -> str:
    """Milliseconds as "840 ms" or "3.2 s"; "—" when unknown."""
    if value is None or value == "":
        return "—"
    try:
        ms = float(value)
    except (TypeError, ValueError):
        return "—"
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{minutes:.0f} min {seconds:.0f} s"


@register.filter
def tokens(value: Any) -> str:
    if value is None or value == "":
        return "—"
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


@register.filter
def badge(status: Any) -> str:
    return BADGE.get(str(status), "badge")


@register.filter
def status_text(status: Any) -> str:
    return str(status or "").replace("_", " ")


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None
