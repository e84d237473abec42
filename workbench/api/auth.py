"""How API callers authenticate: a list of auth callables, tried in order.

A personal API token (``Authorization: Bearer fw_…``, see ``workbench.tokens``) first, then the
browser session (with CSRF checks on unsafe methods, which ``SessionAuth`` does). A token
reaches only its own workspace: ``api.access.api_membership`` answers 404 for any other.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja.security import HttpBearer, SessionAuth


class ApiTokenAuth(HttpBearer):
    def authenticate(self, request: HttpRequest, token: str) -> Any:
        from workbench.tokens.services import token_authenticate

        found = token_authenticate(token)
        if found is None:
            return None
        request.api_token = found  # type: ignore[attr-defined]
        return found.user


def api_auth() -> list[Any]:
    return [ApiTokenAuth(), SessionAuth()]
