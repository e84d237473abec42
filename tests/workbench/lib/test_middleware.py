"""The middleware chain stays async under daphne, and still serves static files and pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.test import AsyncClient
from django.utils.module_loading import import_string

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace


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


@pytest.mark.django_db(transaction=True)
async def test_it_answers_the_health_check_to_a_signed_in_browser_under_asgi(alice: User) -> None:
    # /healthz skips loading the session's user: nothing after may load it on the event loop.
    client = AsyncClient()
    await client.aforce_login(alice)

    response = await client.get("/healthz")

    assert response.status_code in (200, 503)  # 503 only when a service is down
    assert response.json()["checks"]["database"]["ok"] is True


@pytest.mark.django_db(transaction=True)
async def test_it_shows_times_in_the_readers_zone_under_asgi(
    alice: User, workspace: Workspace
) -> None:
    alice.time_zone = "Asia/Tokyo"
    await alice.asave()
    created = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)
    await sync_to_async(finished_run)(workspace, alice, created_at=created)
    client = AsyncClient()
    await client.aforce_login(alice)

    response = await client.get(f"/w/{workspace.slug}/runs/")

    assert "Mar 2, 08:30" in response.content.decode()  # UTC+9
