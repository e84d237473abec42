"""Curation statistics on data whose answers are known."""

from __future__ import annotations

import math

import pytest

from workbench.curation import stats
from workbench.curation.stats import (
    agreement_of,
    bradley_terry,
    cohen_kappa,
    leaderboard,
    wilson_interval,
)


def test_it_gives_the_textbook_wilson_interval() -> None:
    # 8 of 10: the Wilson 95% interval is [0.4902, 0.9433].
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_it_keeps_the_interval_inside_zero_and_one() -> None:
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_it_computes_cohens_kappa_on_a_known_table() -> None:
    # The classic 2x2 example: 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> kappa 0.4.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)


def test_it_says_kappa_is_undefined_when_one_label_is_all_there_is() -> None:
    assert cohen_kappa([(0, 0)] * 4) is None
    assert cohen_kappa([]) is None


def test_it_gives_kappa_one_for_perfect_agreement_and_rates_with_counts() -> None:
    agreement = agreement_of([(0, 0), (1, 1), (2, 2), (0, 1)])
    assert (agreement.agreed, agreement.total, agreement.rate) == (3, 4, 0.75)
    assert cohen_kappa([(0, 0), (1, 1), (2, 2)]) == pytest.approx(1.0)


def test_it_ranks_a_model_that_always_wins_first() -> None:
    data = [("a", "b", 1.0)] * 5 + [("a", "c", 1.0)] * 5 + [("b", "c", 1.0)] * 3 + [("c", "b", 1.0)]
    scores = bradley_terry(data)
    assert max(scores, key=scores.get) == "a"
    assert scores["b"] > scores["c"]
    # Scaled to a geometric mean of 1.
    assert math.prod(scores.values()) == pytest.approx(1.0)


def test_it_gives_equal_scores_to_symmetric_data() -> None:
    data = [("a", "b", 1.0), ("b", "a", 1.0), ("b", "c", 1.0), ("c", "b", 1.0)]
    data += [("a", "c", 0.5)] * 2
    scores = bradley_terry(data)
    assert scores["a"] == pytest.approx(scores["b"]) == pytest.approx(scores["c"])
    assert scores["a"] == pytest.approx(1.0)


def test_it_recovers_known_strengths() -> None:
    # P(a beats b) = 2/3 means strengths in the ratio 2:1.
    scores = bradley_terry([("a", "b", 1.0)] * 200 + [("b", "a", 1.0)] * 100)
    assert scores["a"] / scores["b"] == pytest.approx(2.0, rel=0.01)


def test_it_bootstraps_intervals_around_the_scores_reproducibly() -> None:
    groups = [[("a", "b", 1.0), ("a", "c", 1.0)]] * 6 + [[("b", "a", 1.0), ("b", "c", 1.0)]] * 2
    first = leaderboard(groups, rounds=50, seed=3)
    assert first == leaderboard(groups, rounds=50, seed=3)
    assert [s.name for s in first] == ["a", "b", "c"]
    top = first[0]
    assert top.low <= top.score <= top.high
    assert (top.wins, top.losses, top.ties) == (12, 2, 0)
    assert top.win_rate == pytest.approx(12 / 14)


def test_it_counts_ties_as_half_wins() -> None:
    (a, b) = sorted(leaderboard([[("a", "b", 0.5)]], rounds=5), key=lambda s: s.name)
    assert (a.ties, b.ties) == (1, 1)
    assert a.win_rate == 0.5
    assert a.score == pytest.approx(b.score)


def test_it_returns_nothing_without_comparisons() -> None:
    assert leaderboard([]) == []


def test_it_tallies_answer_wins_per_run() -> None:
    outcomes = [
        (frozenset({"a", "b"}), "a"),
        (frozenset({"a", "b", "c"}), "c"),
        (frozenset({"a", "c"}), None),  # a tie or "none is good": judged, nobody won
    ]
    assert stats.answer_wins(outcomes) == {"a": (1, 3), "b": (0, 2), "c": (1, 2)}
    standings = {s.name: s for s in stats.leaderboard([[("a", "b", 1.0)]], answers=outcomes)}
    assert (standings["a"].runs_won, standings["a"].runs_judged) == (1, 3)
    assert standings["a"].answer_win_rate == pytest.approx(1 / 3)
    assert standings["b"].answer_win_rate == 0
