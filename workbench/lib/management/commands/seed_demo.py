from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from workbench.lib.demo import demo_seed


class Command(BaseCommand):
    help = "Create (or refresh) the demo user, workspace, simulated credential and pools."

    def handle(self, *args: Any, **options: Any) -> None:
        seed = demo_seed()
        self.stdout.write(self.style.SUCCESS("Demo workspace ready."))
        self.stdout.write(f"  user:      {seed.username}")
        if seed.password_changed:
            self.stdout.write("  password:  (changed by the user since it was generated)")
        else:
            self.stdout.write(f"  password:  {seed.password}")
        self.stdout.write(f"  workspace: {seed.workspace_slug}")
        if seed.password_reset:
            self.stdout.write(
                self.style.WARNING(
                    f"The saved demo password ({Path(settings.VAR_DIR) / 'demo_password'}) was "
                    "missing, so the demo user's password was reset to the one above."
                )
            )
