"""The contract every provider keeps.

A provider speaks one wire protocol. It is handed its key for each call (it never reads
settings, the environment or a database) and yields ``TextDelta`` items followed by exactly
one ``StreamEnd``; anything else is a ``ProviderError``. A stream that stops without a finish
reason raises ``TruncatedStream``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from fusion.types import ApiKey, ChatRequest, StreamItem


@dataclass(frozen=True)
class Timeouts:
    """Seconds. ``first_token`` and ``idle`` bound silence; ``total`` bounds the whole call."""

    connect: float = 10.0
    first_token: float = 60.0
    idle: float = 60.0
    total: float = 600.0


class Provider(ABC):
    """One wire protocol at one address."""

    kind: str = ""  # "openai", "anthropic", "gemini", "simulated"

    def __init__(self, *, name: str, timeouts: Timeouts | None = None) -> None:
        self.name = name  # shown in errors and call records, e.g. the credential label
        self.timeouts = timeouts or Timeouts()

    @abstractmethod
    def stream(self, request: ChatRequest, key: ApiKey | None) -> AsyncIterator[StreamItem]:
        """Stream one chat completion."""

    @abstractmethod
    async def list_models(self, key: ApiKey | None) -> list[str]:
        """The model ids this provider offers with this key."""


@dataclass(frozen=True)
class Endpoint:
    """A provider together with the keys a run may use with it (empty when keyless)."""

    provider: Provider
    keys: tuple[ApiKey, ...] = ()
