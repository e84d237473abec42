"""Fixtures of the engine's tests. Shared file: add fixtures by appending."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fusion.providers.http import make_client
from fusion.providers.transport import HttpClient
from fusion.testing.upstream import Upstream


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    """A loopback server playing OpenAI, Anthropic and Gemini, scripted per model."""
    async with Upstream() as up:
        yield up


@pytest.fixture
async def http_client() -> AsyncIterator[HttpClient]:
    """One pooled client for the test, as a worker keeps one per event loop."""
    async with make_client(trust_env=False) as client:
        yield client
