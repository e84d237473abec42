"""Write static/css/pygments.css from workbench.lib.markdown (after changing its styles)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from workbench.lib.markdown import pygments_css


class Command(BaseCommand):
    help = "Regenerate static/css/pygments.css, the colours of highlighted code."

    def handle(self, *args: Any, **options: Any) -> None:
        path = settings.BASE_DIR / "static" / "css" / "pygments.css"
        path.write_text(pygments_css())
        self.stdout.write(f"wrote {path}")
