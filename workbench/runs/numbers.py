"""Money in runs: Decimals in the database, plain strings on every wire (events, snapshots,
the REST API), the same spelling everywhere ("0.00012", never "1.2E-4" or "0.0001200000")."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any


def decimal_or_none(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def money_text(value: Any) -> str | None:
    """An amount as a plain decimal string without the storage's trailing zeros."""
    amount = decimal_or_none(value)
    return None if amount is None else format(amount.normalize(), "f")
