"""What a run may cost, estimated before any call is made, and whether its budget allows it.

Every call is counted at its worst: the prompt's estimated tokens plus everything it is shown
(others' answers in a debate, all answers for the judge) in, all of ``max_tokens`` out
(``DEFAULT_MAX_TOKENS`` when open), at the price of the dearest model that may answer it (a
member's fallbacks may stand in for its model). A model without a price is never counted as
$0: the call is flagged unpriced, and a run with a budget refuses to start with one, since no
cap can be enforced on spend it cannot count.

This is the one estimate: the engine checks it, the workbench itemises it (``estimate_calls``)
on the pool page and reserves it against monthly budgets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from fusion.costs import Price, estimate_cost
from fusion.results import CostEstimate
from fusion.strategies import get_strategy
from fusion.tokens import DEFAULT_MAX_TOKENS, estimate_tokens
from fusion.types import Member, RunSpec

# The judge's and the debate's own instructions and framing, in tokens.
JUDGE_OVERHEAD_TOKENS = 400
DEBATE_OVERHEAD_TOKENS = 150
MESSAGE_OVERHEAD_TOKENS = 8

JUDGE = "judge"  # the seat of judge calls in ``CallEstimate``

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "CallEstimate",
    "budget_refusal",
    "estimate_calls",
    "estimate_run_cost",
    "summarise",
]


@dataclass(frozen=True)
class CallEstimate:
    """One call of a run at its worst."""

    seat: str  # the member's id, or JUDGE
    round: int  # a member's round; 0 for the judge
    phase: str | None  # a judge pass's phase ("score", "analysis", "synthesis"); None: member
    model: str  # the model it is priced at: the dearest of those that may answer it
    input_tokens: int
    output_tokens: int
    priced_usd: Decimal  # the cost at the dearest priced model (0 when none is priced)
    unpriced: tuple[str, ...]  # models that may answer it and have no price

    @property
    def cost(self) -> Decimal | None:
        """The call's worst cost, or None when a model that may answer it is unpriced."""
        return None if self.unpriced else self.priced_usd


def _out(max_tokens: int | None) -> int:
    return DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens


def _prompt_tokens(spec: RunSpec, member: Member) -> int:
    system = member.system_prompt or spec.system_prompt or ""
    return estimate_tokens(spec.prompt) + estimate_tokens(system) + MESSAGE_OVERHEAD_TOKENS


def _call(
    seat: str,
    round: int,
    phase: str | None,
    models: Sequence[str],
    tokens_in: int,
    tokens_out: int,
    prices: Mapping[str, Price] | None,
) -> CallEstimate:
    dearest: tuple[Decimal, str] | None = None
    unpriced: list[str] = []
    for model in dict.fromkeys(models):
        cost = estimate_cost(tokens_in, tokens_out, model, prices)
        if cost is None:
            unpriced.append(model)
        elif dearest is None or cost > dearest[0]:
            dearest = (cost, model)
    priced, model = dearest if dearest is not None else (Decimal(0), models[0])
    return CallEstimate(seat, round, phase, model, tokens_in, tokens_out, priced, tuple(unpriced))


def estimate_calls(spec: RunSpec, prices: Mapping[str, Price] | None = None) -> list[CallEstimate]:
    """Every call ``spec`` may make: members x rounds, then the judge's passes."""
    strategy = get_strategy(spec.mode)
    outs = {m.id: _out(m.max_tokens) for m in spec.members}
    calls: list[CallEstimate] = []
    for round in range(strategy.member_rounds(spec)):
        for m in spec.members:
            tokens_in = _prompt_tokens(spec, m)
            if round > 0:
                tokens_in += sum(outs.values()) + DEBATE_OVERHEAD_TOKENS
            models = (m.model, *m.fallback_models)
            calls.append(_call(m.id, round, None, models, tokens_in, outs[m.id], prices))
    judge = spec.judge
    if judge is not None and len(spec.members) > 1:  # a lone answer needs no judge
        base = (
            estimate_tokens(spec.prompt)
            + estimate_tokens(judge.instructions or "")
            + sum(outs.values())
            + JUDGE_OVERHEAD_TOKENS
        )
        for p in strategy.judge_passes(spec):
            tokens_in = base + p.extra_input_tokens
            out = _out(judge.max_tokens)
            calls.append(_call(JUDGE, 0, p.phase, (judge.model,), tokens_in, out, prices))
    return calls


def summarise(calls: Iterable[CallEstimate]) -> CostEstimate:
    calls = list(calls)
    priced = sum((c.priced_usd for c in calls), Decimal(0))
    unpriced = tuple(dict.fromkeys(m for c in calls for m in c.unpriced))
    return CostEstimate(
        usd=None if unpriced else priced,
        priced_usd=priced,
        unpriced_models=unpriced,
        calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
    )


def estimate_run_cost(spec: RunSpec, prices: Mapping[str, Price] | None = None) -> CostEstimate:
    """The most ``spec`` can cost; ``usd`` is None (and ``has_unpriced`` true) when any model
    that may be called has no price."""
    return summarise(estimate_calls(spec, prices))


def budget_refusal(estimate: CostEstimate, budget_usd: Decimal | None) -> str | None:
    """Why a run with this estimate may not start under ``budget_usd``, or None if it may."""
    if budget_usd is None:
        return None
    if estimate.has_unpriced:
        names = ", ".join(estimate.unpriced_models)
        return (
            f"no price for {names}, so a budget of ${budget_usd} cannot cover it: set a price "
            "(0 for a free local model) or remove the budget"
        )
    if estimate.priced_usd > budget_usd:
        return f"estimated cost ${estimate.priced_usd:.4f} is over the budget ${budget_usd}"
    return None
