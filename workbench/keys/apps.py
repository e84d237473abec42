from __future__ import annotations

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class KeysConfig(AppConfig):
    """Provider credentials (encrypted API keys), their model catalogs and the price table."""

    name = "workbench.keys"
    label = "keys"

    def ready(self) -> None:
        from workbench.keys.prices import prices_sync_builtin

        post_migrate.connect(prices_sync_builtin, sender=self)
