from __future__ import annotations

import csv
import io

import pytest

from workbench.experiments.arms import ArmChoice
from workbench.experiments.datasets import ItemInput
from workbench.experiments.models import ArmKind
from workbench.experiments.results import (
    accuracy_cost_svg,
    experiment_results,
    results_csv,
    results_json,
)
from workbench.experiments.services import dataset_create, experiment_advance, experiment_create

from .conftest import finish


def _run_all(alice, workspace, pool, n: int, pool_right: int, solo_right: int):
    dataset = dataset_create(
        workspace=workspace,
        user=alice,
        name="d",
        items=[ItemInput(f"=1+{i}", str(1 + i), "number") for i in range(n)],
    )
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=ArmChoice(pool=pool),
        concurrency=32,
    )  # fmt: skip
    experiment_advance(experiment_id=experiment.pk)
    for r in experiment.results.select_related("arm", "item", "run"):
        position = r.item.position
        if r.arm.kind == ArmKind.POOL:
            finish(r.run, fused=r.item.expected if position < pool_right else "0")
        else:
            finish(r.run, texts=[r.item.expected if position < solo_right else "0"])
    experiment_advance(experiment_id=experiment.pk)
    return experiment


def test_it_says_fusion_beats_the_best_single_model_only_when_significant(
    alice, workspace, pool
) -> None:
    experiment = _run_all(alice, workspace, pool, n=10, pool_right=9, solo_right=2)
    results = experiment_results(experiment)
    assert results.headline_significant
    assert results.headline.startswith("Fusion (")
    assert "p = 0.0156" in results.headline  # 7 discordant pairs, all for fusion
    # Three pairs: 0.0156 × 3 = 0.0469 for the first, still below 0.05 after Holm.
    assert "Holm-adjusted p = 0.0469 over 3 pairwise tests" in results.headline


def test_it_does_not_claim_a_win_on_a_small_difference(alice, workspace, pool) -> None:
    experiment = _run_all(alice, workspace, pool, n=10, pool_right=5, solo_right=3)
    results = experiment_results(experiment)
    assert not results.headline_significant
    assert results.headline.startswith("No significant difference")
    assert all(not c.paired.significant for c in results.comparisons)


def test_it_draws_one_escaped_point_per_arm(alice, workspace, pool) -> None:
    pool.name = "<b>pool</b>"
    pool.save()
    experiment = _run_all(alice, workspace, pool, n=3, pool_right=3, solo_right=1)
    svg = str(accuracy_cost_svg(experiment_results(experiment).arms))
    assert svg.count("<circle") == 3
    assert "<b>" not in svg and "&lt;b&gt;pool&lt;/b&gt;" in svg


def test_it_defuses_formulas_in_the_csv_but_keeps_numbers(alice, workspace, pool) -> None:
    dataset = dataset_create(
        workspace=workspace,
        user=alice,
        name="d",
        items=[ItemInput("=1+0", "-3", "number"), ItemInput("-2+3", "+1.5e-4", "number"),
               ItemInput("@SUM(A1)", "-0.5", "number")],
    )  # fmt: skip
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset,
        choice=ArmChoice(pool=pool, include_solos=False), concurrency=32,
    )  # fmt: skip
    experiment_advance(experiment_id=experiment.pk)
    for r in experiment.results.select_related("run"):
        finish(r.run, fused=f"-cmd|' /C calc'!A0 then {r.item.expected}")
    experiment_advance(experiment_id=experiment.pk)
    rows = list(csv.DictReader(io.StringIO(results_csv(experiment))))
    # Formula triggers are defused…
    assert [r["prompt"] for r in rows] == ["'=1+0", "'-2+3", "'@SUM(A1)"]
    assert all(r["answer"].startswith("'-cmd|") for r in rows)
    # …plain numbers stay numbers, signs and exponents included.
    assert [r["expected"] for r in rows] == ["-3", "+1.5e-4", "-0.5"]
    assert [r["extracted"] for r in rows] == ["-3", "0.00015", "-0.5"]


def test_it_corrects_for_multiple_comparisons_before_claiming_a_win(alice, workspace, pool) -> None:
    """6–0 discordant pairs give p = 0.031 against each of two single models; over the three
    pairs Holm makes that 0.094: no claim, and the page says why."""
    dataset = dataset_create(
        workspace=workspace, user=alice, name="d",
        items=[ItemInput(f"=3+{i}", str(3 + i), "number") for i in range(6)],
    )  # fmt: skip
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=ArmChoice(pool=pool),
        concurrency=32,
    )  # fmt: skip
    experiment_advance(experiment_id=experiment.pk)
    for r in experiment.results.select_related("arm", "item", "run"):
        if r.arm.kind == ArmKind.POOL:
            finish(r.run, fused=r.item.expected)
        else:
            finish(r.run, texts=["0"])
    experiment_advance(experiment_id=experiment.pk)
    results = experiment_results(experiment)
    raw = {
        (c.a.position, c.b.position): (c.paired.p_value, c.p_adjusted) for c in results.comparisons
    }
    assert raw[(0, 1)] == pytest.approx((0.03125, 0.09375))
    assert raw[(0, 2)] == pytest.approx((0.03125, 0.09375))
    assert raw[(1, 2)] == pytest.approx((1.0, 1.0))
    assert not results.headline_significant
    assert all(c.better is None for c in results.comparisons)
    assert "Holm-adjusted p = 0.0938 over 3 pairwise tests" in results.headline
    assert "not once corrected for the multiple comparisons" in results.headline
    data = results_json(experiment)
    assert data["comparisons"][0]["mcnemar_p_holm"] == pytest.approx(0.09375)
    assert data["comparisons"][0]["significant"] is False


def test_it_compares_fusion_with_repeated_sampling(alice, workspace, pool) -> None:
    dataset = dataset_create(
        workspace=workspace,
        user=alice,
        name="d",
        items=[ItemInput(f"=2+{i}", str(2 + i), "number") for i in range(8)],
    )
    choice = ArmChoice(pool=pool, include_solos=False, self_consistency=True, samples=2)
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=choice, concurrency=32
    )
    experiment_advance(experiment_id=experiment.pk)
    for r in experiment.results.select_related("arm", "item", "run"):
        if r.arm.kind == ArmKind.POOL:
            finish(r.run, fused=r.item.expected)
        else:
            finish(r.run, texts=["0", "0"])
    experiment_advance(experiment_id=experiment.pk)
    results = experiment_results(experiment)
    assert results.headline_significant
    assert "beats the best repeated sampling of one model" in results.headline
    assert "p = 0.00781" in results.headline  # 8 of 8 discordant pairs


def test_it_compares_fusion_with_self_fusion_of_one_model(alice, workspace, pool) -> None:
    dataset = dataset_create(
        workspace=workspace,
        user=alice,
        name="d",
        items=[ItemInput(f"=3+{i}", str(3 + i), "number") for i in range(8)],
    )
    choice = ArmChoice(pool=pool, include_solos=False, self_fusion=True, samples=3)
    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=choice, concurrency=32
    )
    experiment_advance(experiment_id=experiment.pk)
    sampled = experiment.arms.get(kind=ArmKind.SELF_FUSION)
    for r in experiment.results.select_related("arm", "item", "run"):
        if r.arm.kind == ArmKind.POOL:
            finish(r.run, fused=f"It is {r.item.expected}.")
        else:  # the same model three times, merged: right on the first two items only
            finish(r.run, fused=r.item.expected if r.item.position < 2 else "7000")
    experiment_advance(experiment_id=experiment.pk)

    results = experiment_results(experiment)
    summary = next(s for s in results.arms if s.arm.pk == sampled.pk)
    assert (summary.graded, summary.correct) == (8, 2)  # its merged answer is what is graded
    assert results.headline_significant
    assert "beats the best repeated sampling of one model" in results.headline
