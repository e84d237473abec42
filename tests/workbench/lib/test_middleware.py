"""The middleware chain stays async under daphne, and still serves static files and pages."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string

from workbench.accounts.models import User


def test_every_middleware_can_run_in_an_async_chain() -> None:
    # One sync-only middleware turns the whole chain below it synchronous: every request to an
    # async view (the gateway's) would then be adapted into a thread and back.
    sync_only = [
        path
        for path in settings.MIDDLEWARE
        if not getattr(import_string(path), "async_capable", False)
    ]
    assert sync_only == []


async def test_it_serves_a_static_file_under_asgi() -> None:
    response = await AsyncClient().get("/static/vendor/htmx/htmx.min.js")

    assert response.status_code == 200
    body = b"".join(response.streaming_content)  # a file, read synchronously
    assert b"htmx" in body


@pytest.mark.django_db(transaction=True)
async def test_it_serves_a_signed_in_page_under_asgi(alice: User) -> None:
    client = AsyncClient()
    await client.aforce_login(alice)

    response = await client.get("/", follow=True)

    assert response.status_code == 200
    assert alice.username in response.content.decode()
