from __future__ import annotations

from django.apps import AppConfig


class TokensConfig(AppConfig):
    """Personal API tokens: how programs call the REST API and the OpenAI-compatible gateway."""

    name = "workbench.tokens"
    label = "tokens"
