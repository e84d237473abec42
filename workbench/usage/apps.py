from __future__ import annotations

from django.apps import AppConfig


class UsageConfig(AppConfig):
    """What the workspace spends: the usage page, monthly budgets, Prometheus metrics."""

    name = "workbench.usage"
    label = "usage"
