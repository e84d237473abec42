"""Money in templates: Decimal in, "$0.0042" / "$1.23" out; None shows as "unpriced"."""

from __future__ import annotations

from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def usd(value: Decimal | None) -> str:
    if value is None:
        return "unpriced"
    amount = Decimal(value)
    if amount == 0:
        return "$0"
    if abs(amount) < Decimal("0.0001"):
        return "< $0.0001"
    # Cents hide what a single call costs; four places show it without noise.
    return f"${amount:,.4f}" if abs(amount) < 1 else f"${amount:,.2f}"


@register.filter
def per_million(value: Decimal | None) -> str:
    if value is None:
        return "\N{EN DASH}"
    text = f"{Decimal(value):,.4f}".rstrip("0").rstrip(".")
    return f"${text}"
