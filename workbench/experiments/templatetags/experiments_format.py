"""Proportions in templates: 0.4167 -> "42%"; differences as signed points: -0.08 -> "−8"."""

from __future__ import annotations

import json
from typing import Any

from django import template

from workbench.experiments.checkers import CHECKER_SHORT

register = template.Library()


@register.filter
def pct(value: float | None) -> str:
    if value is None:
        return "\N{EM DASH}"
    return f"{value * 100:.0f}%"


@register.filter
def points(value: float | None) -> str:
    if value is None:
        return "\N{EM DASH}"
    number = round(value * 100)
    return f"+{number}" if number > 0 else f"\N{MINUS SIGN}{-number}" if number < 0 else "0"


@register.filter
def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@register.filter
def checker_short(value: str) -> str:
    """A checker's name in tables: the key, or "judge (rubric)" / "human" for those."""
    return CHECKER_SHORT.get(value, value)
