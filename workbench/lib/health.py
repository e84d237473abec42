"""Liveness of the parts a run needs: database, Redis and at least one Celery worker."""

from __future__ import annotations

from typing import Any

import redis
from django.conf import settings
from django.db import connection


def _check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any failure means "down"; the type is reported, not raised
        return type(exc).__name__
    return None


def _check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1
        )
        client.ping()
        client.close()
    except Exception as exc:
        return type(exc).__name__
    return None


def _check_worker() -> str | None:
    from workbench.celery import app

    try:
        replies = app.control.ping(timeout=1.0)
    except Exception as exc:
        return type(exc).__name__
    return None if replies else "no worker answered"


def health_report() -> tuple[bool, dict[str, Any]]:
    checks = {"database": _check_database(), "redis": _check_redis()}
    # Without Redis the worker cannot be asked, so only ask when Redis answers.
    checks["worker"] = _check_worker() if checks["redis"] is None else "redis is down"
    healthy = all(error is None for error in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {
            name: {"ok": error is None, **({"error": error} if error else {})}
            for name, error in checks.items()
        },
    }
    if not healthy:
        body["failing"] = [name for name, error in checks.items() if error]
    return healthy, body
