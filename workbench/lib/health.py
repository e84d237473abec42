"""Liveness of the parts a run needs: database, Redis and at least one Celery worker.

Two scopes: ``all`` (the default, for monitoring: can runs execute?) and ``web`` (for the web
container's own health check: can this process serve pages?). The web scope leaves the worker
out, so a deployment whose workers are down, or not started yet, does not mark its web
processes unhealthy as well.
"""

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
        # limit=1: return at the first answer instead of waiting out the timeout for more.
        replies = app.control.ping(timeout=1.0, limit=1)
    except Exception as exc:
        return type(exc).__name__
    return None if replies else "no worker answered"


SCOPES = ("all", "web")


def health_report(scope: str = "all") -> tuple[bool, dict[str, Any]]:
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    checks = {"database": _check_database(), "redis": _check_redis()}
    if scope == "all":
        # Without Redis the worker cannot be asked, so only ask when Redis answers.
        checks["worker"] = _check_worker() if checks["redis"] is None else "redis is down"
    healthy = all(error is None for error in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "scope": scope,
        "checks": {
            name: {"ok": error is None, **({"error": error} if error else {})}
            for name, error in checks.items()
        },
    }
    if not healthy:
        body["failing"] = [name for name, error in checks.items() if error]
    return healthy, body
