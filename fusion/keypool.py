"""Spread one provider's calls across several keys.

The least recently used available key goes next (round robin when all are healthy). A key that
got a 429 cools down for its Retry-After (or a default); one that got a 401/403 is dropped for
the run. When every key is cooling, ``acquire`` waits for the earliest to come back; when every
key is dropped, it raises a permanent ``ProviderError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fusion.errors import ProviderError
from fusion.types import ApiKey

DEFAULT_COOLDOWN_S = 20.0


@dataclass
class _Slot:
    key: ApiKey
    last_used: float = float("-inf")
    cool_until: float = 0.0
    dropped: bool = False


class KeyPool:
    """The keys a run may use with one provider; keyless when empty (``acquire`` gives None)."""

    def __init__(
        self,
        keys: Sequence[ApiKey],
        *,
        provider: str,
        default_cooldown_s: float = DEFAULT_COOLDOWN_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.default_cooldown_s = default_cooldown_s
        self._clock = clock
        self._slots = [_Slot(k) for k in keys]
        self._changed = asyncio.Event()

    @property
    def keyless(self) -> bool:
        return not self._slots

    def available(self) -> int:
        """How many keys could be used right now."""
        now = self._clock()
        return sum(1 for s in self._slots if not s.dropped and s.cool_until <= now)

    async def acquire(self, model: str = "") -> ApiKey | None:
        """The next key to use, waiting while every live key cools down."""
        if not self._slots:
            return None
        while True:
            now = self._clock()
            live = [s for s in self._slots if not s.dropped]
            if not live:
                raise ProviderError(
                    "every key was rejected (401/403)",
                    provider=self.provider,
                    model=model,
                    permanent=True,
                    status=401,
                )
            ready = [s for s in live if s.cool_until <= now]
            if ready:
                # min() keeps the first of equals, so ties go in the order keys were given.
                slot = min(ready, key=lambda s: s.last_used)
                slot.last_used = now
                return slot.key
            wait = min(s.cool_until for s in live) - now
            self._changed.clear()
            # Wake early if another call drops a key (all may now be dropped).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=max(wait, 0.0))

    def rate_limited(self, key: ApiKey | None, retry_after: float | None = None) -> None:
        """Cool ``key`` down after a 429."""
        slot = self._find(key)
        if slot is not None:
            delay = retry_after if retry_after is not None else self.default_cooldown_s
            slot.cool_until = max(slot.cool_until, self._clock() + delay)

    def rejected(self, key: ApiKey | None) -> None:
        """Drop ``key`` for the rest of the run after a 401/403."""
        slot = self._find(key)
        if slot is not None:
            slot.dropped = True
            self._changed.set()

    def _find(self, key: ApiKey | None) -> _Slot | None:
        if key is None:
            return None
        for slot in self._slots:
            if slot.key is key or slot.key == key:
                return slot
        return None
