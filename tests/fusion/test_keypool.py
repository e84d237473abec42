from __future__ import annotations

import asyncio
import time

import pytest

from fusion.errors import ProviderError
from fusion.keypool import KeyPool
from fusion.types import ApiKey

KEYS = (ApiKey("…a", "sk-a"), ApiKey("…b", "sk-b"), ApiKey("…c", "sk-c"))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.001  # every reading is a little later, like a real clock
        return self.now


async def test_it_spreads_calls_round_robin_over_healthy_keys() -> None:
    pool = KeyPool(KEYS, provider="p", clock=FakeClock())
    got = [await pool.acquire() for _ in range(6)]
    assert [k.label for k in got if k] == ["…a", "…b", "…c", "…a", "…b", "…c"]


async def test_it_gives_no_key_when_keyless() -> None:
    pool = KeyPool((), provider="p")
    assert pool.keyless
    assert await pool.acquire() is None


async def test_it_skips_a_rate_limited_key_until_it_cools_down() -> None:
    clock = FakeClock()
    pool = KeyPool(KEYS[:2], provider="p", clock=clock)
    a = await pool.acquire()
    pool.rate_limited(a, retry_after=10.0)
    assert [(await pool.acquire()) for _ in range(3)] == [KEYS[1]] * 3
    clock.now += 10.0
    assert await pool.acquire() == KEYS[0]


async def test_it_uses_the_default_cooldown_without_retry_after() -> None:
    clock = FakeClock()
    pool = KeyPool(KEYS[:2], provider="p", clock=clock, default_cooldown_s=5.0)
    pool.rate_limited(KEYS[0])
    clock.now += 4.0
    assert await pool.acquire() == KEYS[1]
    assert await pool.acquire() == KEYS[1]
    clock.now += 1.0
    assert await pool.acquire() == KEYS[0]


async def test_it_drops_a_rejected_key_for_good() -> None:
    clock = FakeClock()
    pool = KeyPool(KEYS, provider="p", clock=clock)
    pool.rejected(KEYS[1])
    clock.now += 1000
    labels = {k.label for k in [await pool.acquire() for _ in range(6)] if k}
    assert labels == {"…a", "…c"}


async def test_it_waits_for_the_earliest_key_when_all_are_cooling() -> None:
    pool = KeyPool(KEYS[:2], provider="p")
    pool.rate_limited(KEYS[0], retry_after=0.3)
    pool.rate_limited(KEYS[1], retry_after=0.08)
    start = time.monotonic()
    key = await pool.acquire()
    waited = time.monotonic() - start
    assert key == KEYS[1]
    assert 0.07 <= waited < 0.25


async def test_it_fails_permanently_when_every_key_is_rejected() -> None:
    pool = KeyPool(KEYS[:2], provider="p")
    pool.rejected(KEYS[0])
    pool.rejected(KEYS[1])
    with pytest.raises(ProviderError) as info:
        await pool.acquire("gpt-x")
    assert info.value.permanent
    assert "sk-" not in str(info.value)


async def test_it_wakes_a_waiting_caller_when_the_last_key_is_dropped() -> None:
    pool = KeyPool(KEYS[:1], provider="p")
    pool.rate_limited(KEYS[0], retry_after=30.0)
    waiter = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.01)
    pool.rejected(KEYS[0])
    with pytest.raises(ProviderError):
        await asyncio.wait_for(waiter, timeout=1.0)
