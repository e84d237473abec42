from __future__ import annotations

from django.apps import AppConfig


class ExperimentsConfig(AppConfig):
    """Experiments: a dataset through several arms, graded, with honest statistics."""

    name = "workbench.experiments"
    label = "experiments"
