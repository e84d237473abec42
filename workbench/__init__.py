"""The Django project around the fusion engine."""

from workbench.celery import app as celery_app

__all__ = ["celery_app"]
