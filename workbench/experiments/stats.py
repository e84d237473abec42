"""The statistics of an experiment: pure functions on plain numbers, tested on known values.

Accuracy gets a Wilson score interval (sane at 0 % and 100 % and for small n, unlike the
normal approximation). Two arms graded on the same items are compared on *paired* outcomes:
the exact McNemar test looks only at the items where they disagree, which is the honest test
for "does A beat B on these tasks"; a paired bootstrap gives an interval for the difference.

Twelve arms make 66 pairs, and at p < 0.05 about three of 66 true nulls would come out
"significant" by chance; so the p-values of all the pairs are adjusted together with the
Holm–Bonferroni step-down method (which controls the chance of any false claim at 5 %, and is
uniformly more powerful than plain Bonferroni) before anything is called significant.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054
SIGNIFICANCE = 0.05
MAX_BOOTSTRAP_DRAWS = 400_000


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion; None when there is nothing to measure."""
    if n <= 0:
        return None
    if not 0 <= successes <= n:
        raise ValueError("successes must be between 0 and n")
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = (z / (1 + z2 / n)) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (0–100), interpolating linearly between ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs.

    ``only_a``: items A got right and B wrong; ``only_b``: the reverse. Under the null each
    discordant item is a fair coin, so this is a two-sided binomial test with p = 1/2.
    """
    n = only_a + only_b
    if n == 0:
        return 1.0
    k = min(only_a, only_b)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass(frozen=True)
class PairedComparison:
    n: int  # items both arms graded
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float
    diff: float  # accuracy of A minus accuracy of B on the paired items
    diff_low: float | None  # paired bootstrap 95 % interval of ``diff``
    diff_high: float | None

    @property
    def significant(self) -> bool:
        return self.n > 0 and self.p_value < SIGNIFICANCE


def paired_bootstrap(
    a: Sequence[bool], b: Sequence[bool], *, iterations: int = 2000, seed: int = 0
) -> tuple[float, float] | None:
    """A 95 % percentile interval of mean(a) − mean(b), resampling items (pairs stay pairs).

    Seeded, so the same results always show the same interval.
    """
    n = len(a)
    if n == 0 or n != len(b):
        return None
    # Fewer resamples for big datasets: the page must stay fast, and a few hundred resamples
    # already pin a 95 % interval down to about a point.
    iterations = max(200, min(iterations, MAX_BOOTSTRAP_DRAWS // n))
    deltas = [int(x) - int(y) for x, y in zip(a, b, strict=True)]
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(deltas, k=n)) / n for _ in range(iterations))
    return percentile(means, 2.5), percentile(means, 97.5)  # type: ignore[return-value]


def compare_paired(
    a: Sequence[bool], b: Sequence[bool], *, bootstrap: bool = True
) -> PairedComparison:
    """Compare two arms on the items both graded (the sequences are aligned by item)."""
    if len(a) != len(b):
        raise ValueError("paired outcomes must have the same length")
    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = len(a)
    diff = (only_a - only_b) / n if n else 0.0
    interval = paired_bootstrap(a, b) if bootstrap else None
    return PairedComparison(
        n=n,
        both=both,
        only_a=only_a,
        only_b=only_b,
        neither=n - both - only_a - only_b,
        p_value=mcnemar_exact(only_a, only_b),
        diff=diff,
        diff_low=interval[0] if interval else None,
        diff_high=interval[1] if interval else None,
    )


def holm_adjust(p_values: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given.

    Sorted ascending, the i-th smallest (0-based) of m is multiplied by (m − i); each adjusted
    value is at least the one before it (step-down), and at most 1. A hypothesis is rejected
    at level α exactly when its adjusted p-value is below α.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[index]))
        adjusted[index] = running
    return adjusted


def majority(keys: Sequence[str]) -> str | None:
    """The most common non-empty key; a tie goes to the one seen first (deterministic)."""
    counts: dict[str, int] = {}
    for key in keys:
        if key:
            counts[key] = counts.get(key, 0) + 1
    if not counts:
        return None
    best = max(counts.values())
    return next(key for key in keys if key and counts[key] == best)
