from __future__ import annotations

import pytest

from workbench.experiments.stats import (
    compare_paired,
    holm_adjust,
    majority,
    mcnemar_exact,
    paired_bootstrap,
    percentile,
    wilson_interval,
)


def test_it_gives_the_wilson_interval_of_known_proportions() -> None:
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
    assert wilson_interval(5, 10) == pytest.approx((0.23659, 0.76341), abs=1e-5)
    assert wilson_interval(8, 10) == pytest.approx((0.49016, 0.94332), abs=1e-5)
    assert wilson_interval(10, 10) == pytest.approx((0.72247, 1.0), abs=1e-5)
    assert wilson_interval(0, 0) is None


def test_it_computes_the_exact_mcnemar_p_value() -> None:
    assert mcnemar_exact(0, 6) == pytest.approx(0.03125)
    assert mcnemar_exact(1, 9) == pytest.approx(0.021484375)
    assert mcnemar_exact(2, 8) == pytest.approx(0.109375)
    assert mcnemar_exact(8, 2) == mcnemar_exact(2, 8)
    assert mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 0) == 1.0


def test_it_interpolates_percentiles_like_numpy() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None


def test_it_compares_paired_outcomes_only_on_discordant_items() -> None:
    a = [True] * 6 + [True] * 4
    b = [False] * 6 + [True] * 4
    result = compare_paired(a, b)
    assert (result.n, result.both, result.only_a, result.only_b) == (10, 4, 6, 0)
    assert result.p_value == pytest.approx(0.03125)
    assert result.significant
    assert result.diff == pytest.approx(0.6)
    assert result.diff_low is not None and result.diff_low > 0


def test_it_does_not_call_a_small_difference_significant() -> None:
    result = compare_paired([True, True, False], [False, True, True])
    assert not result.significant


def test_it_bootstraps_deterministically() -> None:
    a, b = [True, False, True, True], [False, False, True, False]
    assert paired_bootstrap(a, b) == paired_bootstrap(a, b)
    assert paired_bootstrap([], []) is None


def test_it_takes_the_majority_with_ties_to_the_first_seen() -> None:
    assert majority(["4", "5", "4", ""]) == "4"
    assert majority(["5", "4"]) == "5"
    assert majority(["", ""]) is None


def test_it_adjusts_p_values_by_holm_bonferroni() -> None:
    # Sorted 0.005, 0.01, 0.03, 0.04 -> ×4, ×3, ×2, ×1 = 0.02, 0.03, 0.06, 0.04 -> step-down
    # keeps them rising: 0.02, 0.03, 0.06, 0.06; returned in the order given.
    assert holm_adjust([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm_adjust([0.5, 0.9]) == [1.0, 1.0]  # capped at 1
    assert holm_adjust([0.03]) == [0.03]  # one test: nothing to correct
    assert holm_adjust([]) == []
    # 66 pairs (12 arms): a lone p of 0.001 does not survive (×66 = 0.066); 0.0005 does.
    assert holm_adjust([0.001] + [0.9] * 65)[0] == pytest.approx(0.066)
    assert holm_adjust([0.0005] + [0.9] * 65)[0] == pytest.approx(0.033)
