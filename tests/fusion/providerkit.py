"""Helpers for the provider tests: build a provider on the loopback upstream, run a call."""

from __future__ import annotations

import socket
from typing import Any

from fusion.providers.anthropic import AnthropicProvider
from fusion.providers.base import Timeouts
from fusion.providers.gemini import GeminiProvider
from fusion.providers.http import HttpProvider
from fusion.providers.openai import OpenAIProvider
from fusion.providers.transport import HttpClient
from fusion.testing.upstream import Upstream
from fusion.types import ApiKey, ChatRequest, Message, StreamEnd, StreamItem, TextDelta

SECRET = "sk-test-0123456789abcdef"
KEY = ApiKey(label="…cdef", secret=SECRET)
FAST = Timeouts(connect=1.0, first_token=2.0, idle=2.0, total=5.0)


def make(
    kind: str,
    up: Upstream,
    client: HttpClient,
    timeouts: Timeouts = FAST,
    **options: Any,
) -> HttpProvider:
    if kind == "openai":
        return OpenAIProvider(
            name="Test OpenAI", base_url=f"{up.url}/v1", client=client, timeouts=timeouts, **options
        )
    if kind == "anthropic":
        return AnthropicProvider(
            name="Test Anthropic", base_url=up.url, client=client, timeouts=timeouts, **options
        )
    return GeminiProvider(
        name="Test Gemini", base_url=up.url, client=client, timeouts=timeouts, **options
    )


def ask(model: str, prompt: str = "hello", **kwargs: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=(Message("user", prompt),), **kwargs)


async def collect(
    provider: HttpProvider, request: ChatRequest, key: ApiKey | None = KEY
) -> tuple[str, StreamEnd, list[StreamItem]]:
    """The whole answer, its end, and every item in order."""
    items = [item async for item in provider.stream(request, key)]
    text = "".join(i.text for i in items if isinstance(i, TextDelta))
    end = items[-1]
    assert isinstance(end, StreamEnd), items
    assert sum(isinstance(i, StreamEnd) for i in items) == 1
    return text, end, items


def closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
