"""Re-encrypt every stored API key with the newest of ``FUSION_ENCRYPTION_KEYS``.

Rotation: put a new key first in ``FUSION_ENCRYPTION_KEYS`` (keep the old ones after it),
restart, run this command, then drop the old keys from the variable.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from workbench.keys.services import credentials_reencrypt
from workbench.lib.crypto import DecryptionError


class Command(BaseCommand):
    help = "Re-encrypt every stored API key with the first key of FUSION_ENCRYPTION_KEYS."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            count = credentials_reencrypt()
        except DecryptionError as exc:
            raise CommandError(f"{exc}; nothing was changed.") from None
        self.stdout.write(
            f"Re-encrypted {count} key{'s' if count != 1 else ''} with the newest key."
        )
