"""Keep the admin's price table in step with the built-in one in ``fusion.costs``."""

from __future__ import annotations

from typing import Any

from fusion.costs import DEFAULT_PRICES
from workbench.keys.models import ModelPrice, PriceSource


def prices_sync_builtin(**_: Any) -> None:
    """Add built-in rows that are missing and update those nobody edited; edited rows stay.

    Runs after every ``migrate``, so an upgrade with new list prices reaches the admin too.
    Deleting an edited row in the admin therefore restores the built-in price.
    """
    existing = {row.model: row for row in ModelPrice.objects.all()}
    for model, price in DEFAULT_PRICES.items():
        row = existing.get(model)
        if row is None:
            ModelPrice.objects.create(
                model=model,
                input_per_million=price.input_per_million,
                output_per_million=price.output_per_million,
                source=PriceSource.BUILTIN,
            )
        elif row.source == PriceSource.BUILTIN and (
            row.input_per_million != price.input_per_million
            or row.output_per_million != price.output_per_million
        ):
            row.input_per_million = price.input_per_million
            row.output_per_million = price.output_per_million
            row.save(update_fields=["input_per_million", "output_per_million", "updated_at"])
    ModelPrice.objects.filter(source=PriceSource.BUILTIN).exclude(
        model__in=list(DEFAULT_PRICES)
    ).delete()
