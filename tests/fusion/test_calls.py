"""Retry delays: exponential, capped, jittered, never shorter than the server asked."""

from __future__ import annotations

import random

import pytest

from fusion.calls import Backoff


class Fixed(random.Random):
    """A random source that always draws the same number."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


@pytest.mark.parametrize(("attempt", "full"), [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 8.0)])
def test_it_doubles_each_attempt_up_to_the_cap_scaled_by_half_to_all(
    attempt: int, full: float
) -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0)
    assert backoff.delay(attempt, None, Fixed(0.0)) == pytest.approx(full / 2)
    assert backoff.delay(attempt, None, Fixed(0.999999)) == pytest.approx(full, rel=1e-5)


def test_it_spreads_retries_over_the_whole_jitter_range() -> None:
    # Two clients that failed together must not retry together.
    rng = random.Random(7)
    delays = [Backoff(base_s=1.0, cap_s=8.0).delay(1, None, rng) for _ in range(500)]
    assert all(0.5 <= d < 1.0 for d in delays)
    assert min(delays) < 0.55 and max(delays) > 0.95
    assert len({round(d, 6) for d in delays}) > 450


def test_it_never_retries_sooner_than_retry_after() -> None:
    backoff = Backoff(base_s=0.5, cap_s=8.0)
    assert backoff.delay(1, 30.0, Fixed(0.5)) == 30.0
    assert backoff.delay(4, 0.1, Fixed(0.5)) == pytest.approx(3.0)  # the backoff is longer
