"""One JSON shape for every error the API returns:

``{"detail": "<what went wrong>", "code": "<machine-readable>", "errors": [{"field", "message"}]}``

``errors`` lists field problems (request validation: 422; a broken rule: 400). Submitted
values are never echoed back: a rejected API key must not reappear in a response or a log.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError

from workbench.lib.errors import ServiceError

# Where ninja says a value came from; the field path starts after it.
_SOURCES = {"body", "query", "path", "form", "header", "cookie", "payload", "data"}


def _field(loc: list[Any] | tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    while parts and parts[0] in _SOURCES:
        parts.pop(0)
    return ".".join(parts)


def error_body(
    detail: str, code: str, errors: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {"detail": detail, "code": code, "errors": errors or []}


def register_error_handlers(api: NinjaAPI) -> None:
    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        errors = [
            {"field": _field(e.get("loc", ())), "message": str(e.get("msg", "Invalid value."))}
            for e in exc.errors
        ]
        return api.create_response(
            request, error_body("The request is not valid.", "validation_error", errors), status=422
        )

    @api.exception_handler(ServiceError)
    def service_error(request: HttpRequest, exc: ServiceError) -> HttpResponse:
        field_errors = getattr(exc, "errors", None)
        if field_errors:
            errors = [
                {"field": path, "message": message}
                for path, messages in field_errors.items()
                for message in messages
            ]
        else:
            errors = [{"field": exc.field or "", "message": exc.message}]
        return api.create_response(request, error_body(exc.message, exc.code, errors), status=400)

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return api.create_response(request, error_body("Not found.", "not_found"), status=404)

    @api.exception_handler(PermissionDenied)
    def forbidden(request: HttpRequest, exc: PermissionDenied) -> HttpResponse:
        detail = str(exc) or "You may not do this."
        return api.create_response(request, error_body(detail, "forbidden"), status=403)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        return api.create_response(
            request, error_body("Log in or send a token.", "unauthenticated"), status=401
        )
