"""What a run may cost, estimated before any call is made.

Every call is counted at its worst: the prompt's estimated tokens plus everything it is shown
(others' answers in a debate, all answers for the judge) in, and all of ``max_tokens`` out.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from fusion.costs import Price, estimate_cost
from fusion.results import CostEstimate
from fusion.strategies import get_strategy
from fusion.tokens import estimate_tokens
from fusion.types import Member, RunSpec

# Used when a member or judge leaves max_tokens open; a run's estimate needs some ceiling.
DEFAULT_MAX_TOKENS = 1024
# The judge's and the debate's own instructions and framing, in tokens.
JUDGE_OVERHEAD_TOKENS = 400
DEBATE_OVERHEAD_TOKENS = 150
MESSAGE_OVERHEAD_TOKENS = 8


def _out(max_tokens: int | None) -> int:
    return DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens


def _prompt_tokens(spec: RunSpec, member: Member) -> int:
    system = member.system_prompt or spec.system_prompt or ""
    return estimate_tokens(spec.prompt) + estimate_tokens(system) + MESSAGE_OVERHEAD_TOKENS


def estimate_run_cost(spec: RunSpec, prices: Mapping[str, Price] | None = None) -> CostEstimate:
    """Members x rounds plus the judge's passes, each at its most expensive."""
    strategy = get_strategy(spec.mode)
    outs = {m.id: _out(m.max_tokens) for m in spec.members}
    calls: list[tuple[str, int, int]] = []  # model, input tokens, output tokens
    for round in range(strategy.member_rounds(spec)):
        for m in spec.members:
            tokens_in = _prompt_tokens(spec, m)
            if round > 0:
                tokens_in += sum(outs.values()) + DEBATE_OVERHEAD_TOKENS
            calls.append((m.model, tokens_in, outs[m.id]))
    judge = spec.judge
    if judge is not None and len(spec.members) > 1:
        base = (
            estimate_tokens(spec.prompt)
            + estimate_tokens(judge.instructions or "")
            + sum(outs.values())
            + JUDGE_OVERHEAD_TOKENS
        )
        for p in strategy.judge_passes(spec):
            calls.append((judge.model, base + p.extra_input_tokens, _out(judge.max_tokens)))

    priced = Decimal(0)
    unpriced: list[str] = []
    for model, tokens_in, tokens_out in calls:
        cost = estimate_cost(tokens_in, tokens_out, model, prices)
        if cost is None:
            unpriced.append(model)
        else:
            priced += cost
    return CostEstimate(
        usd=None if unpriced else priced,
        priced_usd=priced,
        unpriced_models=tuple(dict.fromkeys(unpriced)),
        calls=len(calls),
        input_tokens=sum(c[1] for c in calls),
        output_tokens=sum(c[2] for c in calls),
    )
