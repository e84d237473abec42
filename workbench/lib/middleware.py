"""The project's middleware. Each works in both of Django's modes: under daphne the chain
stays async from end to end, so an async view (the gateway's) runs on the server's event loop
instead of being adapted into a thread and back for every request; sync views are run in a
thread by Django as usual.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject, empty
from whitenoise.middleware import WhiteNoiseMiddleware

logger = logging.getLogger(__name__)


class _BothModes:
    """A middleware Django can call synchronously or await, whichever the chain below is."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self.handle_async(request)
        return self.handle(request)

    def handle(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def handle_async(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, which is sync-only, made awaitable: it would otherwise turn the whole chain
    below it synchronous. A static file is served from a thread; anything else passes on."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], **kwargs: Any) -> None:
        super().__init__(get_response, **kwargs)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        static_file = self.find_file(path) if self.autorefresh else self.files.get(path)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        response: Awaitable[HttpResponse] = self.get_response(request)
        return await response


def _activate_zone(user: Any) -> None:
    zone = getattr(user, "time_zone", None)
    try:
        timezone.activate(zoneinfo.ZoneInfo(zone)) if zone else timezone.deactivate()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        timezone.deactivate()


class UserTimezoneMiddleware(_BothModes):
    """Show times in the user's own zone; they are stored in UTC. (The user was loaded by
    ``DatabaseUnavailableMiddleware``, before it.)"""

    def handle(self, request: HttpRequest) -> HttpResponse:
        _activate_zone(getattr(request, "user", None))
        return self.get_response(request)

    async def handle_async(self, request: HttpRequest) -> HttpResponse:
        # Only a user already loaded: loading one here would query from the event loop.
        _activate_zone(_loaded_user(request))
        return await self.get_response(request)


def _loaded_user(request: HttpRequest) -> Any:
    """The session's user if it has been loaded (``request.user`` is lazy), else None."""
    user = getattr(request, "user", None)
    if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
        return None
    return user


def _load_user(request: HttpRequest) -> None:
    """Evaluate the session's user now (Django loads it lazily, at first use)."""
    getattr(request, "user", None) and request.user.is_authenticated


DATABASE_UNAVAILABLE = "The database is unavailable; try again in a moment."
NUL_REFUSED = "Text may not contain NUL (\\x00) characters."

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · Fusion Workbench</title></head>
<body><main><h1>{title}</h1><p>{message}</p></main></body></html>
"""


class DatabaseUnavailableMiddleware(_BothModes):
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

    def handle(self, request: HttpRequest) -> HttpResponse:
        from django.db import InterfaceError, OperationalError

        if request.path != "/healthz":  # the health check reports the outage in its own words
            try:
                _load_user(request)
            except (OperationalError, InterfaceError) as exc:
                return self._unavailable(request, exc)
        return self.get_response(request)

    async def handle_async(self, request: HttpRequest) -> HttpResponse:
        from django.db import InterfaceError, OperationalError

        # Without a session cookie the user is anonymous: no thread, no query (API clients).
        if request.path != "/healthz" and settings.SESSION_COOKIE_NAME in request.COOKIES:
            try:
                # In the request's thread, where its sync view will find the user loaded.
                await sync_to_async(_load_user)(request)
            except (OperationalError, InterfaceError) as exc:
                return self._unavailable(request, exc)
        return await self.get_response(request)

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
