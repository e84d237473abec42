"""Statistics for curation, pure Python (no Django): agreement intervals, Cohen's kappa and
Bradley-Terry strengths from pairwise preferences with bootstrap intervals."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054


def wilson_interval(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion; (0, 1) when there are no trials.

    Wilson rather than the normal approximation: it stays inside [0, 1] and behaves with the
    small counts a team's judgments give.
    """
    if trials <= 0:
        return 0.0, 1.0
    p = successes / trials
    z2 = z * z
    centre = (p + z2 / (2 * trials)) / (1 + z2 / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z2 / (4 * trials * trials)) / (1 + z2 / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters over categorical labels; None when it is undefined (no
    pairs, or chance agreement is already certain: both always said the same one label)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    first = Counter(a for a, _ in pairs)
    second = Counter(b for _, b in pairs)
    expected = sum(first[label] * second.get(label, 0) for label in first) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)


@dataclass(frozen=True)
class Agreement:
    agreed: int
    total: int
    rate: float | None
    low: float
    high: float
    kappa: float | None


def agreement_of(pairs: Sequence[tuple[Hashable, Hashable]]) -> Agreement:
    """Agreement rate (with its 95% Wilson interval) and kappa of (judge, people) labels."""
    agreed = sum(1 for a, b in pairs if a == b)
    total = len(pairs)
    low, high = wilson_interval(agreed, total)
    return Agreement(
        agreed=agreed,
        total=total,
        rate=agreed / total if total else None,
        low=low,
        high=high,
        kappa=cohen_kappa(pairs),
    )


# --- Bradley-Terry ------------------------------------------------------------------------------

# One comparison: (a, b, outcome) where outcome is 1.0 (a won), 0.0 (b won) or 0.5 (tie).
Comparison = tuple[str, str, float]

# A small symmetric pseudo-count on every compared pair keeps a model that never won (or never
# lost) at a finite strength instead of 0 or infinity.
PRIOR = 0.1


def bradley_terry(
    comparisons: Sequence[Comparison], *, iterations: int = 200, tolerance: float = 1e-9
) -> dict[str, float]:
    """Strengths by Hunter's MM algorithm, scaled so their geometric mean is 1."""
    wins: Counter[tuple[str, str]] = Counter()
    items: set[str] = set()
    for a, b, outcome in comparisons:
        if a == b:
            continue
        items.update((a, b))
        wins[(a, b)] += outcome
        wins[(b, a)] += 1 - outcome
    if not items:
        return {}
    pairs = {frozenset(key) for key in wins}
    for pair in pairs:
        a, b = tuple(pair)
        wins[(a, b)] += PRIOR
        wins[(b, a)] += PRIOR
    games: dict[str, dict[str, float]] = {i: {} for i in items}
    for (a, b), w in wins.items():
        games[a][b] = games[a].get(b, 0.0) + w
        games[b][a] = games[b].get(a, 0.0) + w
    total_wins = {i: sum(wins[(i, j)] for j in games[i]) for i in items}
    strength = dict.fromkeys(items, 1.0)
    for _ in range(iterations):
        new = {}
        for i in items:
            denominator = sum(n / (strength[i] + strength[j]) for j, n in games[i].items())
            new[i] = total_wins[i] / denominator if denominator else strength[i]
        scale = math.exp(sum(math.log(v) for v in new.values()) / len(new))
        new = {i: v / scale for i, v in new.items()}
        change = max(abs(new[i] - strength[i]) for i in items)
        strength = new
        if change < tolerance:
            break
    return strength


# One judged run for "how often each model's answer won": the models that answered it and
# the model whose answer people chose (None: a tie, "none is good", the fused answer, a split).
AnswerOutcome = tuple[frozenset[str], str | None]


def answer_wins(outcomes: Iterable[AnswerOutcome]) -> dict[str, tuple[int, int]]:
    """model -> (runs its answer won, judged runs it answered in)."""
    tally: dict[str, list[int]] = {}
    for models, winner in outcomes:
        for model in models:
            counts = tally.setdefault(model, [0, 0])
            counts[1] += 1
            counts[0] += model == winner
    return {model: (won, judged) for model, (won, judged) in tally.items()}


@dataclass(frozen=True)
class Standing:
    name: str
    score: float
    low: float
    high: float
    wins: float
    losses: float
    ties: float
    runs_won: int = 0  # judged runs where this model's answer was the people's winner
    runs_judged: int = 0  # judged runs this model answered in

    @property
    def answer_win_rate(self) -> float | None:
        """Share of the judged runs it answered in where people chose its answer."""
        return self.runs_won / self.runs_judged if self.runs_judged else None

    @property
    def games(self) -> float:
        return self.wins + self.losses + self.ties

    @property
    def win_rate(self) -> float | None:
        # A tie counts as half a win, as in the strengths.
        return (self.wins + self.ties / 2) / self.games if self.games else None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def leaderboard(
    groups: Sequence[Sequence[Comparison]],
    *,
    rounds: int = 200,
    seed: int = 0,
    answers: Iterable[AnswerOutcome] = (),
) -> list[Standing]:
    """Bradley-Terry standings with bootstrap 95% intervals, best first.

    ``groups`` holds each judgment's comparisons: the bootstrap resamples whole judgments, since
    the comparisons one person made on one run are not independent of each other. ``answers``
    adds each model's share of judged runs won (``answer_wins``) to the models ranked.
    """
    flat = [c for group in groups for c in group]
    scores = bradley_terry(flat)
    if not scores:
        return []
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {name: [] for name in scores}
    for _ in range(rounds):
        drawn = [c for _ in groups for c in groups[rng.randrange(len(groups))]]
        resampled = bradley_terry(drawn, iterations=100, tolerance=1e-6)
        for name in scores:
            # A model absent from a resample has no evidence there: it sits at the mean (1).
            samples[name].append(resampled.get(name, 1.0))
    tally: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in scores}
    for a, b, outcome in flat:
        if a == b:
            continue
        if outcome == 0.5:
            tally[a][2] += 1
            tally[b][2] += 1
        else:
            winner, loser = (a, b) if outcome == 1.0 else (b, a)
            tally[winner][0] += 1
            tally[loser][1] += 1
    won = answer_wins(answers)
    standings = [
        Standing(
            name=name,
            score=score,
            low=_percentile(samples[name], 0.025),
            high=_percentile(samples[name], 0.975),
            wins=tally[name][0],
            losses=tally[name][1],
            ties=tally[name][2],
            runs_won=won.get(name, (0, 0))[0],
            runs_judged=won.get(name, (0, 0))[1],
        )
        for name, score in scores.items()
    ]
    standings.sort(key=lambda s: (-s.score, s.name))
    return standings
