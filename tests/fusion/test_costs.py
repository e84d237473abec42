from __future__ import annotations

from decimal import Decimal

import pytest

from fusion.costs import DEFAULT_PRICES, Price, cost_for, estimate_cost, price_for
from fusion.types import Usage


@pytest.mark.parametrize(
    ("model", "known"),
    [
        ("gpt-4o", "gpt-4o"),
        ("GPT-4o", "gpt-4o"),
        ("openai/gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("anthropic/claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("models/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash"),
        ("gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("meta-llama/llama-3.3-70b-instruct", "llama-3.3-70b-instruct"),
    ],
)
def test_it_finds_prices_tolerantly(model, known):
    assert price_for(model) == DEFAULT_PRICES[known]


def test_it_keeps_similar_models_apart():
    assert price_for("gpt-4o-mini") != price_for("gpt-4o")
    assert price_for("gemini-2.5-flash-lite") == DEFAULT_PRICES["gemini-2.5-flash-lite"]


def test_it_returns_none_for_unknown_models():
    assert price_for("my-finetune-v3") is None
    assert cost_for(Usage(100, 100), "my-finetune-v3") is None


def test_it_prices_simulated_models_with_the_fictitious_wildcard():
    assert price_for("sim-fast@ttft=0.1") == DEFAULT_PRICES["sim-*"]
    assert price_for("sim-anything") is not None


def test_it_prices_openrouter_free_variants_at_zero():
    free = price_for("meta-llama/llama-3.3-70b-instruct:free")

    assert free == Price(Decimal(0), Decimal(0))


def test_it_computes_exact_decimal_costs():
    usage = Usage(input_tokens=1_000, output_tokens=500)

    # gpt-4o: $2.50 in, $10.00 out per million
    assert cost_for(usage, "gpt-4o") == Decimal("0.0075")


def test_it_prefers_the_cost_the_provider_reported():
    usage = Usage(input_tokens=1_000, output_tokens=500, reported_cost=Decimal("0.0042"))

    assert cost_for(usage, "gpt-4o") == Decimal("0.0042")
    assert cost_for(usage, "unknown-model") == Decimal("0.0042")


def test_it_uses_the_given_price_table_instead_of_the_default():
    prices = {"GPT-4o": Price(Decimal("1"), Decimal("2")), "local-*": Price(Decimal(0), Decimal(0))}

    assert cost_for(Usage(1_000_000, 1_000_000), "openai/gpt-4o", prices) == Decimal(3)
    assert cost_for(Usage(10, 10), "local-llama", prices) == Decimal(0)
    assert price_for("gpt-4.1", prices) is None


def test_it_estimates_the_most_a_call_can_cost():
    assert estimate_cost(2_000, 1_000, "claude-sonnet-4") == Decimal("0.021")
    assert estimate_cost(0, None, "claude-sonnet-4") == Decimal(4096 * 15) / 1_000_000
    assert estimate_cost(10, 10, "mystery") is None


def test_it_stores_every_default_price_as_a_non_negative_decimal():
    for price in DEFAULT_PRICES.values():
        assert isinstance(price.input_per_million, Decimal)
        assert isinstance(price.output_per_million, Decimal)
        assert price.input_per_million >= 0 and price.output_per_million >= 0
