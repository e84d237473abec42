from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import pre_save


class UsageConfig(AppConfig):
    """What the workspace spends: the usage page, monthly budgets, Prometheus metrics."""

    name = "workbench.usage"
    label = "usage"

    def ready(self) -> None:
        from workbench.usage.budgets import refuse_unpriced_on_create

        # Every way a run is made (web, REST API, gateway, experiments) creates its row: the
        # one place to refuse a run a monthly cap could not count (see ``budgets``).
        pre_save.connect(
            refuse_unpriced_on_create, sender="runs.Run", dispatch_uid="usage.refuse_unpriced"
        )
