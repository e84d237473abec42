"""Websocket routes; each app's consumers are listed here."""

from __future__ import annotations

from django.urls import path

from workbench.runs.consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<uuid:run_id>/", RunConsumer.as_asgi()),
]
