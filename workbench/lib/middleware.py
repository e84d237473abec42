from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

logger = logging.getLogger(__name__)


class UserTimezoneMiddleware:
    """Show times in the user's own zone; they are stored in UTC."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        zone = getattr(request.user, "time_zone", None) if hasattr(request, "user") else None
        try:
            timezone.activate(zoneinfo.ZoneInfo(zone)) if zone else timezone.deactivate()
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            timezone.deactivate()
        return self.get_response(request)


DATABASE_UNAVAILABLE = "The database is unavailable; try again in a moment."

_UNAVAILABLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Unavailable · Fusion Workbench</title></head>
<body><main><h1>Temporarily unavailable</h1><p>{message}</p></main></body></html>
"""


class DatabaseUnavailableMiddleware:
    """Answer 503 (not a bare 500) when the database cannot be reached.

    The page is plain HTML that needs nothing from the database (the site layout does). The
    request's own writes are in transactions, so a failure part-way leaves nothing half-written.
    It sits right after ``AuthenticationMiddleware`` and loads the session's user itself: Django
    turns an exception raised in a later middleware (which would load it first) into a 500
    before any other middleware sees it; errors in views come through ``process_exception``.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        from django.db import InterfaceError, OperationalError

        if request.path != "/healthz":  # the health check reports the outage in its own words
            try:
                getattr(request, "user", None) and request.user.is_authenticated
            except (OperationalError, InterfaceError) as exc:
                return self._unavailable(request, exc)
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        from django.db import InterfaceError, OperationalError

        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        return self._unavailable(request, exception)

    def _unavailable(self, request: HttpRequest, exception: Exception) -> HttpResponse:
        logger.warning(
            "database unavailable during %s %s: %s",
            request.method,
            request.path,
            type(exception).__name__,
        )
        response: HttpResponse
        if request.path.startswith("/api/"):
            body = {"detail": DATABASE_UNAVAILABLE, "code": "database_unavailable", "errors": []}
            response = JsonResponse(body, status=503)
        elif request.path.startswith(("/v1/", "/anthropic/")):
            error = {"type": "service_unavailable", "message": DATABASE_UNAVAILABLE}
            response = JsonResponse({"type": "error", "error": error}, status=503)
        else:
            page = _UNAVAILABLE_PAGE.format(message=DATABASE_UNAVAILABLE)
            response = HttpResponse(page, status=503, content_type="text/html; charset=utf-8")
        response["Retry-After"] = "5"
        return response
