from __future__ import annotations

from django.apps import AppConfig


class GatewayConfig(AppConfig):
    """OpenAI- and Anthropic-compatible endpoints serving the workspace's pools and models."""

    name = "workbench.gateway"
    label = "gateway"
