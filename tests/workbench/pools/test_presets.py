"""Presets built from the models the user has keys for."""

from __future__ import annotations

import pytest

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import catalog_add_model, credential_create
from workbench.pools import presets
from workbench.pools.services import pool_create

pytestmark = pytest.mark.django_db


def _openai(alice: User, workspace: Workspace, *models: str) -> Credential:
    credential = credential_create(
        workspace=workspace,
        user=alice,
        provider="openai",
        label="OpenAI",
        scope=Scope.WORKSPACE,
        keys=["sk-test-0000000000000000"],
    )
    for model in models:
        catalog_add_model(credential=credential, user=alice, model_id=model)
    return credential


def test_it_picks_strong_models_for_quality_and_cheap_ones_for_budget(
    alice: User, workspace: Workspace, sim: Credential
) -> None:
    _openai(alice, workspace, "gpt-4o", "gpt-4o-mini", "gpt-4.1-nano", "text-embedding-3-small")
    choices = presets.model_choices(alice, workspace)
    quality = presets.quality_preset(choices)
    budget = presets.budget_preset(choices)
    assert quality.data and budget.data
    assert quality.models[0] == "gpt-4o"
    assert quality.data.judge and quality.data.judge.model == "gpt-4o"
    assert "sim-slow" in quality.models  # one per credential before a second from the same
    assert budget.models[0] == "gpt-4.1-nano"
    assert "text-embedding-3-small" not in quality.models + budget.models  # unpriced
    # Presets are valid pools as they stand.
    for preset in (quality, budget):
        assert pool_create(workspace=workspace, user=alice, data=preset.data).members.count() == 3


def test_it_offers_self_fusion_at_varied_temperatures(
    alice: User, workspace: Workspace, sim: Credential
) -> None:
    choices = presets.model_choices(alice, workspace)
    choice = presets.find_choice(choices, f"{sim.pk}:sim-balanced")
    assert choice is not None
    preset = presets.self_fusion_preset(choice, 4)
    assert preset.data is not None
    assert [m.model for m in preset.data.members] == ["sim-balanced"] * 4
    assert [m.temperature for m in preset.data.members] == [0.2, 0.47, 0.73, 1.0]
    pool = pool_create(workspace=workspace, user=alice, data=preset.data)
    assert pool.name == "Self-fusion \N{MULTIPLICATION SIGN}4: sim-balanced"


def test_it_explains_a_preset_that_lacks_priced_models(alice: User, workspace: Workspace) -> None:
    _openai(alice, workspace, "my-private-model")
    choices = presets.model_choices(alice, workspace)
    assert presets.quality_preset(choices).data is None
    assert "two priced models" in presets.budget_preset(choices).unavailable
