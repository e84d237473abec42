"""The pool page's estimate: itemised, equal to what the engine reserves, unpriced flagged."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

from fusion.budget import estimate_run_cost
from fusion.tokens import DEFAULT_MAX_TOKENS
from workbench.accounts.models import User
from workbench.keys.models import Credential, ModelPrice
from workbench.keys.selectors import price_table
from workbench.pools.estimate import config_estimate, pool_estimate
from workbench.pools.inputs import JudgeInput, MemberInput, validate_pool
from workbench.pools.models import Pool
from workbench.pools.services import pool_freeze, pool_input_of, pool_spec
from workbench.runs.launch import freeze_clean

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "overrides",
    [
        {"mode": "best_of"},
        {"mode": "merge"},
        {"mode": "debate", "rounds": 2, "debate_judge": "best_of"},
        {"mode": "debate", "rounds": 3, "system_prompt": "Be brief."},
    ],
)
def test_it_adds_up_to_what_the_engine_reserves(
    make_pool: Callable[..., Pool], sim: Credential, overrides: dict[str, Any]
) -> None:
    members = [
        MemberInput(credential_id=sim.pk, model="sim-fast", max_tokens=300),
        MemberInput(credential_id=sim.pk, model="sim-slow", system_prompt="A pirate."),
    ]
    judge = JudgeInput(credential_id=sim.pk, model="sim-judge", swap_twice=True, instructions="x")
    pool = make_pool(members=members, judge=judge, **overrides)
    estimate = pool_estimate(pool, prompt_tokens=700)
    spec = pool_spec(pool_freeze(pool), prompt="x" * 2800)
    assert estimate.total_usd == estimate_run_cost(spec, price_table()).priced_usd
    assert estimate.total_usd and estimate.total_usd > 0


def test_it_itemises_members_rounds_and_judge_passes(
    make_pool: Callable[..., Pool], sim: Credential
) -> None:
    pool = make_pool(
        mode="debate",
        rounds=2,
        judge=JudgeInput(credential_id=sim.pk, model="sim-judge", swap_twice=True),
    )
    lines = pool_estimate(pool).lines
    assert [(line.label, line.calls) for line in lines] == [
        ("sim-fast", 3),
        ("sim-balanced", 3),
        ("sim-slow", 3),
        ("Judge: analysis", 1),
        ("Judge: analysis (swapped order)", 1),
        ("Judge: synthesis", 1),
    ]


def test_it_flags_unpriced_members_and_judge_instead_of_counting_zero(
    make_pool: Callable[..., Pool], sim: Credential, local: Credential
) -> None:
    pool = make_pool(
        members=[
            MemberInput(credential_id=sim.pk, model="sim-fast"),
            MemberInput(credential_id=local.pk, model="llama-local"),
        ],
        judge=JudgeInput(credential_id=local.pk, model="llama-local"),
    )
    estimate = pool_estimate(pool)
    assert estimate.total_usd is None
    assert estimate.priced_usd > 0
    assert estimate.unpriced_members == ("llama-local",)
    assert estimate.judge_unpriced
    assert "member llama-local and the judge" in estimate.unpriced_note


def test_it_uses_prices_edited_in_the_admin(
    make_pool: Callable[..., Pool], sim: Credential, local: Credential
) -> None:
    pool = make_pool(members=[MemberInput(credential_id=local.pk, model="llama-local")], judge=None)
    assert pool_estimate(pool).total_usd is None
    ModelPrice.objects.create(
        model="llama-local", input_per_million=Decimal("1"), output_per_million=Decimal("2")
    )
    estimate = pool_estimate(pool, prompt_tokens=1000)
    assert estimate.total_usd is not None
    # 1000 prompt tokens + overhead in, the engine's one default ceiling out.
    out = Decimal(DEFAULT_MAX_TOKENS)
    assert estimate.total_usd == (Decimal(1008) * 1 + out * 2) / Decimal(1_000_000)


def test_it_flags_an_estimate_over_the_budget(
    make_pool: Callable[..., Pool],
) -> None:
    pool = make_pool(budget_usd=Decimal("0.0001"))
    assert pool_estimate(pool).over_budget


def test_it_seeds_the_admin_price_table_from_the_built_in_one() -> None:
    row = ModelPrice.objects.get(model="gpt-4o-mini")
    assert (row.input_per_million, row.output_per_million) == (Decimal("0.15"), Decimal("0.60"))
    assert row.source == "builtin"


def test_it_prices_a_member_at_its_dearest_fallback(
    make_pool: Callable[..., Pool], sim: Credential
) -> None:
    ModelPrice.objects.create(
        model="sim-dear", input_per_million=Decimal("50"), output_per_million=Decimal("90")
    )
    plain = make_pool(members=[MemberInput(credential_id=sim.pk, model="sim-fast")], judge=None)
    backed = make_pool(
        name="Backed",
        members=[
            MemberInput(
                credential_id=sim.pk,
                model="sim-fast",
                fallback_models=["sim-dear"],
                custom_model=True,
            )
        ],
        judge=None,
    )
    cheap, dear = pool_estimate(plain), pool_estimate(backed)
    assert cheap.total_usd is not None and dear.total_usd is not None
    assert dear.total_usd > cheap.total_usd
    assert dear.lines[0].model == "sim-dear"
    assert dear.lines[0].cost == dear.total_usd


def test_it_says_a_capped_pool_with_an_unpriced_model_will_be_refused(
    make_pool: Callable[..., Pool], sim: Credential, local: Credential
) -> None:
    members = [MemberInput(credential_id=local.pk, model="llama-local")]
    pool = make_pool(members=members, judge=None, budget_usd=Decimal("5"))
    estimate = pool_estimate(pool)
    assert estimate.priced_usd == 0 and estimate.total_usd is None  # never a silent $0
    assert estimate.refusal is not None and "no price for llama-local" in estimate.refusal
    assert "runs are refused" in estimate.unpriced_note
    uncapped = pool_estimate(make_pool(name="Free", members=members, judge=None))
    assert uncapped.refusal is None and uncapped.has_unpriced


def test_it_estimates_a_saved_pool_and_its_unsaved_twin_alike(
    make_pool: Callable[..., Pool], sim: Credential, alice: User
) -> None:
    pool = make_pool(
        mode="debate",
        rounds=2,
        members=[
            MemberInput(credential_id=sim.pk, model="sim-fast", fallback_models=["sim-slow"]),
            MemberInput(credential_id=sim.pk, model="sim-balanced", max_tokens=200),
        ],
        judge=JudgeInput(credential_id=sim.pk, model="sim-judge", swap_twice=True),
    )
    saved = pool_freeze(pool)
    unsaved = freeze_clean(validate_pool(pool_input_of(pool), user=alice, workspace=pool.workspace))
    assert unsaved["spec"] == saved["spec"] and unsaved["labels"] == saved["labels"]
    assert config_estimate(unsaved, prompt="x" * 2000) == pool_estimate(pool)
