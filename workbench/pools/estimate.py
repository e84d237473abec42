"""The itemised cost estimate shown on a pool's page, the new-run form and the API.

``fusion.budget`` makes the estimate (the very one the engine checks before a run and the
workbench reserves against budgets); this module only turns a pool or a frozen configuration
into the engine's ``RunSpec`` and groups the engine's calls into lines: one per member (all
its rounds), one per judge pass. Unpriced models are listed, never counted as $0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fusion.budget import JUDGE, CallEstimate, budget_refusal, estimate_calls, summarise
from fusion.costs import Price, price_book, price_for
from fusion.tokens import CHARS_PER_TOKEN, estimate_tokens
from fusion.types import RunSpec
from workbench.keys.selectors import price_table
from workbench.pools.models import Pool
from workbench.pools.services import pool_freeze, pool_spec

__all__ = [
    "CHARS_PER_TOKEN",
    "DEFAULT_PROMPT_TOKENS",
    "EstimateLine",
    "PoolEstimate",
    "config_estimate",
    "estimate_spec",
    "pool_estimate",
]

# What an estimate assumes when there is no prompt yet: a question of about this many tokens.
DEFAULT_PROMPT_TOKENS = 500

_PHASES = {"score": "scoring", "analysis": "analysis", "synthesis": "synthesis"}


@dataclass(frozen=True)
class EstimateLine:
    label: str
    role: str  # "member" or "judge"
    model: str  # the model it is priced at (a member's dearest fallback may stand in)
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
    refusal: str | None = None  # why the engine would refuse the run under its budget

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
        note = (
            f"No price for {' and '.join(who)}: not counted in the total, and a budget "
            "cannot cover it. An admin can add prices (0 for a free local model)."
        )
        if self.budget_usd is not None:
            note += " Until then runs are refused, since this pool has a per-run budget."
        return note


def estimate_spec(
    spec: RunSpec, labels: Mapping[str, str], prices: Mapping[str, Price]
) -> list[EstimateLine]:
    """One line per member (all its rounds) and one per judge pass."""
    return _lines(estimate_calls(spec, prices), spec, labels, prices)


def _lines(
    calls: Sequence[CallEstimate],
    spec: RunSpec,
    labels: Mapping[str, str],
    prices: Mapping[str, Price],
) -> list[EstimateLine]:
    lines = []
    for m in spec.members:
        mine = [c for c in calls if c.seat == m.id]
        if mine:
            lines.append(_line(labels.get(m.id, m.id), "member", mine, prices))
    seen: dict[str, int] = {}
    for c in calls:
        if c.seat != JUDGE or c.phase is None:
            continue
        seen[c.phase] = seen.get(c.phase, 0) + 1
        label = f"Judge: {_PHASES.get(c.phase, c.phase)}"
        if seen[c.phase] > 1:  # the second pass of "judge twice with swapped order"
            label += " (swapped order)"
        lines.append(_line(label, "judge", [c], prices))
    return lines


def _line(
    label: str, role: str, calls: Sequence[CallEstimate], prices: Mapping[str, Price]
) -> EstimateLine:
    dearest = max(calls, key=lambda c: c.priced_usd)
    unpriced = any(c.unpriced for c in calls)
    return EstimateLine(
        label=label,
        role=role,
        model=dearest.model,
        calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        price=price_for(dearest.model, prices),
        cost=None if unpriced else sum((c.priced_usd for c in calls), Decimal(0)),
    )


def config_estimate(
    config: dict[str, Any],
    *,
    prompt: str = "",
    system_prompt: str = "",
    prices: Mapping[str, Price] | None = None,
) -> PoolEstimate:
    """The itemised worst case of one run of a frozen configuration for this prompt (a
    question of ``DEFAULT_PROMPT_TOKENS`` when there is none yet)."""
    prices = price_book(price_table() if prices is None else prices)
    text = prompt if prompt.strip() else "x" * (DEFAULT_PROMPT_TOKENS * CHARS_PER_TOKEN)
    spec = pool_spec(config, prompt=text, system_prompt=system_prompt or None)
    calls = estimate_calls(spec, prices)
    lines = _lines(calls, spec, config.get("labels") or {}, prices)
    summary = summarise(calls)
    return PoolEstimate(
        lines=tuple(lines),
        priced_usd=summary.priced_usd,
        total_usd=summary.usd,
        unpriced_members=tuple(
            line.label for line in lines if line.role == "member" and line.cost is None
        ),
        judge_unpriced=any(line.role == "judge" and line.cost is None for line in lines),
        prompt_tokens=estimate_tokens(text),
        budget_usd=spec.budget_usd,
        refusal=budget_refusal(summary, spec.budget_usd),
    )


def pool_estimate(
    pool: Pool,
    *,
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    prices: Mapping[str, Price] | None = None,
) -> PoolEstimate:
    """What one run of ``pool`` may cost at most, itemised, for a prompt of ``prompt_tokens``."""
    prompt = "x" * (prompt_tokens * CHARS_PER_TOKEN)
    return config_estimate(pool_freeze(pool, strict=False), prompt=prompt, prices=prices)
