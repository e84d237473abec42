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
NUL_REFUSED = "Text may not contain NUL (\\x00) characters."

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Fusion Workbench</title></head>
<body><main><h1>{title}</h1><p>{message}</p></main></body></html>
"""


class DatabaseUnavailableMiddleware:
    """Answer 503 (not a bare 500) when the database cannot be reached.

    The page is plain HTML that needs nothing from the database (the site layout does). The
    request's own writes are in transactions, so a failure part-way leaves nothing half-written.
    It sits right after ``AuthenticationMiddleware`` and loads the session's user itself: Django
    turns an exception raised in a later middleware (which would load it first) into a 500
    before any other middleware sees it; errors in views come through ``process_exception``.

    It also answers 400 for text with a NUL character that reached PostgreSQL, which refuses it
    in any text field ("PostgreSQL text fields cannot contain NUL (0x00) bytes"): a query
    filter, a name, a prompt. Django's forms refuse such text themselves; the REST API and the
    gateway take strings as they come, and this is the one place that sees them all.
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
        from django.db import DataError, InterfaceError, OperationalError

        if isinstance(exception, DataError) and "NUL" in str(exception):
            return _error(request, 400, "invalid_characters", "Invalid request", NUL_REFUSED)
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
        response = _error(
            request, 503, "database_unavailable", "Temporarily unavailable", DATABASE_UNAVAILABLE
        )
        response["Retry-After"] = "5"
        return response


def _error(request: HttpRequest, status: int, code: str, title: str, message: str) -> HttpResponse:
    """The error in the shape of whoever asked: the API's, the gateway's, or a bare page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message, "code": code, "errors": []}, status=status)
    if request.path.startswith(("/v1/", "/anthropic/")):
        kind = "service_unavailable" if status == 503 else "invalid_request_error"
        error = {"type": kind, "message": message}
        return JsonResponse({"type": "error", "error": error}, status=status)
    page = _PAGE.format(title=title, message=message)
    return HttpResponse(page, status=status, content_type="text/html; charset=utf-8")
