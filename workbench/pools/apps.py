from __future__ import annotations

from django.apps import AppConfig


class PoolsConfig(AppConfig):
    """Pools: which models answer, how they are fused, and by which judge."""

    name = "workbench.pools"
    label = "pools"
