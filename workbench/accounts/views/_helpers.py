from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django.template.loader import render_to_string
from django.utils.http import url_has_allowed_host_and_scheme


def safe_next(request: HttpRequest, default: str = "home") -> str:
    """Where ``?next=`` (or the posted ``next``) asks to go, if it stays on this site."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return resolve_url(default)


def htmx_fragment(
    request: HttpRequest, template: str | None, context: dict[str, Any] | None = None
) -> HttpResponse:
    """A fragment for htmx to swap in, with the pending messages as toasts swapped in out of
    band, so feedback shows the same way as after a full page load."""
    html = render_to_string(template, context, request) if template else ""
    # Wrapped in <template> so it parses whole even after a <tr> (htmx unwraps it).
    toasts = render_to_string("partials/toasts.html", {"oob": True}, request)
    html += f"<template>{toasts}</template>"
    return HttpResponse(html)
