"""The itemised cost estimate shown on a pool's page.

It counts calls the way ``fusion.budget.estimate_run_cost`` does (every call at its worst: the
whole of ``max_tokens`` out), so the page shows what a run will reserve against its budget;
a test keeps the two totals equal. Unpriced models are listed, never counted as $0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from fusion.budget import (
    DEBATE_OVERHEAD_TOKENS,
    DEFAULT_MAX_TOKENS,
    JUDGE_OVERHEAD_TOKENS,
    MESSAGE_OVERHEAD_TOKENS,
)
from fusion.costs import Price, estimate_cost, price_for
from fusion.strategies import get_strategy
from fusion.tokens import estimate_tokens
from fusion.types import RunSpec
from workbench.keys.selectors import price_table
from workbench.pools.models import Pool
from workbench.pools.services import pool_freeze, pool_spec

# What the page assumes when there is no prompt yet: a question of about this many tokens.
DEFAULT_PROMPT_TOKENS = 500
CHARS_PER_TOKEN = 4

_PHASES = {"score": "scoring", "analysis": "analysis", "synthesis": "synthesis"}


@dataclass(frozen=True)
class EstimateLine:
    label: str
    role: str  # "member" or "judge"
    model: str
    calls: int
    input_tokens: int
    output_tokens: int
    price: Price | None
    cost: Decimal | None  # None: unpriced


@dataclass(frozen=True)
class PoolEstimate:
    lines: tuple[EstimateLine, ...]
    priced_usd: Decimal
    total_usd: Decimal | None  # None when any call is unpriced
    unpriced_members: tuple[str, ...]  # labels of members whose model has no price
    judge_unpriced: bool
    prompt_tokens: int
    budget_usd: Decimal | None

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.priced_usd > self.budget_usd

    @property
    def has_unpriced(self) -> bool:
        return bool(self.unpriced_members) or self.judge_unpriced

    @property
    def unpriced_note(self) -> str:
        """Which seats have no price, in a sentence for the pool page."""
        who = []
        if self.unpriced_members:
            noun = "member" if len(self.unpriced_members) == 1 else "members"
            who.append(f"{noun} {', '.join(self.unpriced_members)}")
        if self.judge_unpriced:
            who.append("the judge")
        if not who:
            return ""
        return (
            f"No price for {' and '.join(who)}: not counted in the total, and a budget "
            "cannot cover it. An admin can add prices."
        )


def _out(max_tokens: int | None) -> int:
    return DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens


def estimate_spec(
    spec: RunSpec, labels: Mapping[str, str], prices: Mapping[str, Price]
) -> list[EstimateLine]:
    """One line per member (all its rounds) and one per judge pass."""
    strategy = get_strategy(spec.mode)
    rounds = strategy.member_rounds(spec)
    outs = {m.id: _out(m.max_tokens) for m in spec.members}
    lines = []
    for m in spec.members:
        system = m.system_prompt or spec.system_prompt or ""
        first_in = estimate_tokens(spec.prompt) + estimate_tokens(system) + MESSAGE_OVERHEAD_TOKENS
        later_in = first_in + sum(outs.values()) + DEBATE_OVERHEAD_TOKENS
        tokens_in = first_in + (rounds - 1) * later_in
        tokens_out = rounds * outs[m.id]
        lines.append(
            _line(labels.get(m.id, m.id), "member", m.model, rounds, tokens_in, tokens_out, prices)
        )
    judge = spec.judge
    if judge is not None and len(spec.members) > 1:
        base = (
            estimate_tokens(spec.prompt)
            + estimate_tokens(judge.instructions or "")
            + sum(outs.values())
            + JUDGE_OVERHEAD_TOKENS
        )
        seen: dict[str, int] = {}
        for p in strategy.judge_passes(spec):
            seen[p.phase] = seen.get(p.phase, 0) + 1
            label = f"Judge: {_PHASES.get(p.phase, p.phase)}"
            if seen[p.phase] > 1:  # the second pass of "judge twice with swapped order"
                label += " (swapped order)"
            lines.append(
                _line(
                    label,
                    "judge",
                    judge.model,
                    1,
                    base + p.extra_input_tokens,
                    _out(judge.max_tokens),
                    prices,
                )
            )
    return lines


def _line(
    label: str,
    role: str,
    model: str,
    calls: int,
    tokens_in: int,
    tokens_out: int,
    prices: Mapping[str, Price],
) -> EstimateLine:
    price = price_for(model, prices)
    cost = None
    if price is not None:
        # Per call, as the engine sums them, so rounding matches its total exactly.
        cost = estimate_cost(tokens_in, tokens_out, model, prices)
    return EstimateLine(label, role, model, calls, tokens_in, tokens_out, price, cost)


def pool_estimate(
    pool: Pool,
    *,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    prices: Mapping[str, Price] | None = None,
) -> PoolEstimate:
    """What one run of ``pool`` may cost at most, itemised, for a prompt of ``prompt_tokens``."""
    prices = price_table() if prices is None else prices
    frozen = pool_freeze(pool, strict=False)
    spec = pool_spec(frozen, prompt="x" * (prompt_tokens * CHARS_PER_TOKEN))
    lines = estimate_spec(spec, frozen["labels"], prices)
    priced = sum((line.cost for line in lines if line.cost is not None), Decimal(0))
    unpriced_members = tuple(
        line.label for line in lines if line.role == "member" and line.cost is None
    )
    judge_unpriced = any(line.role == "judge" and line.cost is None for line in lines)
    return PoolEstimate(
        lines=tuple(lines),
        priced_usd=priced,
        total_usd=None if unpriced_members or judge_unpriced else priced,
        unpriced_members=unpriced_members,
        judge_unpriced=judge_unpriced,
        prompt_tokens=prompt_tokens,
        budget_usd=pool.budget_usd,
    )
