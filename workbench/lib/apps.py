from __future__ import annotations

from django.apps import AppConfig


class LibConfig(AppConfig):
    """Project-wide pieces: health, env helpers, the demo seed and other commands."""

    name = "workbench.lib"
    label = "lib"
