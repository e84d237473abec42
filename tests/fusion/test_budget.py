"""The run estimate: one output ceiling, fallbacks priced, unpriced never $0 nor under a cap."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from fusion.budget import budget_refusal, estimate_calls, estimate_run_cost
from fusion.costs import Price, estimate_cost
from fusion.engine import run_fusion
from fusion.errors import BudgetExceeded
from fusion.providers.anthropic import AnthropicProvider
from fusion.tokens import DEFAULT_MAX_TOKENS
from fusion.types import ChatRequest, JudgeSpec, Member, Message, RunSpec

from .runkit import Recorder, sim_endpoints

PRICES = {
    "cheap": Price(Decimal("0.10"), Decimal("0.40")),
    "dear": Price(Decimal("5.00"), Decimal("20.00")),
    "sim-*": Price(Decimal("0.50"), Decimal("1.50")),
}
SIM = "sim-fast@ttft=0,tps=0,tokens=5"


def one(model: str, *fallbacks: str, max_tokens: int | None = None) -> RunSpec:
    member = Member("m1", "p", model, max_tokens=max_tokens, fallback_models=fallbacks)
    return RunSpec(mode="best_of", prompt="What is 2 + 2?", members=(member,))


def test_it_assumes_one_output_ceiling_wherever_max_tokens_is_open() -> None:
    (call,) = estimate_calls(one("cheap"), PRICES)
    assert call.output_tokens == DEFAULT_MAX_TOKENS
    assert call.cost == estimate_cost(call.input_tokens, None, "cheap", PRICES)
    # Anthropic, which needs max_tokens on the wire, is sent the same ceiling.
    anthropic = AnthropicProvider(name="a", base_url="http://127.0.0.1:9")
    body = anthropic.stream_call(ChatRequest("claude", (Message("user", "hi"),)), None).body
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS
    assert estimate_calls(one("cheap", max_tokens=50), PRICES)[0].output_tokens == 50


def test_it_prices_a_member_at_its_dearest_fallback() -> None:
    with_fallback = estimate_run_cost(one("cheap", "dear"), PRICES)
    assert with_fallback.usd == estimate_run_cost(one("dear"), PRICES).usd
    assert with_fallback.usd is not None
    assert with_fallback.usd > estimate_run_cost(one("cheap"), PRICES).priced_usd
    (call,) = estimate_calls(one("cheap", "dear"), PRICES)
    assert call.model == "dear"


def test_it_flags_an_unpriced_fallback_instead_of_counting_it_free() -> None:
    estimate = estimate_run_cost(one("cheap", "mystery"), PRICES)
    assert estimate.has_unpriced and estimate.usd is None
    assert estimate.unpriced_models == ("mystery",)
    # The priced part still counts the priced model.
    assert estimate.priced_usd == estimate_run_cost(one("cheap"), PRICES).priced_usd


def test_it_refuses_a_budget_it_cannot_check_and_one_it_is_over() -> None:
    unpriced = estimate_run_cost(one("mystery"), PRICES)
    assert unpriced.priced_usd == 0  # which used to pass any cap
    assert "no price for mystery" in (budget_refusal(unpriced, Decimal("100")) or "")
    assert budget_refusal(unpriced, None) is None  # no cap: it runs, flagged unpriced
    priced = estimate_run_cost(one("dear"), PRICES)
    assert priced.usd is not None
    assert "over the budget" in (budget_refusal(priced, priced.usd / 2) or "")
    assert budget_refusal(priced, priced.usd) is None


async def test_it_never_starts_a_capped_run_of_unpriced_models() -> None:
    spec = RunSpec(
        mode="best_of",
        prompt="Which is larger, 2 or 3?",
        members=(Member("m1", "sim", SIM), Member("m2", "sim", SIM)),
        judge=JudgeSpec("sim", "sim-judge@ttft=0,tps=0"),
        budget_usd=Decimal("1000"),
    )
    sink = Recorder()
    with pytest.raises(BudgetExceeded, match="no price for sim-fast"):
        await run_fusion(
            spec, sim_endpoints(), sink, run_id="r", prices={"sim-judge*": PRICES["dear"]}
        )
    assert sink.events == []  # refused before any call
    # Without a cap it runs, and says what it could not price.
    result = await run_fusion(
        replace(spec, budget_usd=None),
        sim_endpoints(),
        sink,
        run_id="r2",
        prices={"sim-judge*": PRICES["dear"]},
    )
    assert result.status == "finished"
    started = sink.of("run.started")[0]
    assert started.unpriced_models == (SIM,)  # type: ignore[attr-defined]
    assert started.estimated_cost is None  # type: ignore[attr-defined]
    assert result.totals.cost is None and result.totals.unpriced
