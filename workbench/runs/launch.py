"""Getting from what a person chose (a pool, or models picked ad hoc) to a frozen
configuration and its cost estimate, the two things ``services.run_create`` takes.

An ad hoc choice goes through the pools' own validation (``pools.inputs.validate_pool``) and
is frozen in exactly the shape ``pools.services.pool_freeze`` gives, so the worker, the run
page and history cannot tell the two apart except by the missing pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fusion.tokens import estimate_tokens
from workbench.accounts.models import User, Workspace
from workbench.keys.selectors import price_table
from workbench.pools.estimate import DEFAULT_PROMPT_TOKENS, PoolEstimate, estimate_spec
from workbench.pools.inputs import CleanPool, JudgeInput, MemberInput, PoolInput, validate_pool
from workbench.pools.models import Mode, Pool
from workbench.pools.selectors import pools_for
from workbench.pools.services import (
    FrozenSeat,
    config_freeze,
    pool_freeze,
    pool_spec,
    pool_validate_for,
)

ADHOC_NAME = "Ad hoc"


def pool_by_ref(user: User, workspace: Workspace, ref: str | int) -> Pool | None:
    """A pool of the workspace by id or slug (the API takes either)."""
    pools = pools_for(user, workspace)
    text = str(ref).strip()
    if text.isdigit():
        found = pools.filter(pk=int(text)).first()
        if found is not None:
            return found
    return pools.filter(slug=text).first()


def pool_config(pool: Pool, user: User) -> dict[str, Any]:
    """The pool frozen for a run, after checking ``user`` may run it as it stands now.

    Raises ``ServiceError`` (``PoolValidationError``) naming what is wrong.
    """
    pool_validate_for(pool, user)
    return pool_freeze(pool)


@dataclass(frozen=True)
class AdhocMember:
    credential_id: int | None
    model: str


def adhoc_config(
    *,
    user: User,
    workspace: Workspace,
    members: list[AdhocMember],
    mode: str = Mode.BEST_OF,
    rounds: int = 1,
    judge: AdhocMember | None = None,
) -> dict[str, Any]:
    """A configuration from models picked for one run; raises ``PoolValidationError``.

    Models need not be in the credential's catalog: picking ad hoc is for trying things.
    """
    data = PoolInput(
        name=ADHOC_NAME,
        mode=mode,
        rounds=rounds,
        members=[MemberInput(m.credential_id, m.model, custom_model=True) for m in members],
        judge=JudgeInput(judge.credential_id, judge.model, custom_model=True)
        if judge is not None and (judge.credential_id or judge.model)
        else None,
    )
    return freeze_clean(validate_pool(data, user=user, workspace=workspace))


def freeze_clean(clean: CleanPool) -> dict[str, Any]:
    """``pool_freeze``'s output for a validated pool that was never saved."""
    members = [
        FrozenSeat(
            credential=m.credential,
            model=m.model,
            system_prompt=m.system_prompt,
            temperature=m.temperature,
            max_tokens=m.max_tokens,
            fallback_models=tuple(m.fallback_models),
        )
        for m in clean.members
    ]
    judge = None
    if clean.judge is not None:
        judge = FrozenSeat(
            credential=clean.judge.credential,
            model=clean.judge.model,
            instructions=clean.judge.instructions,
            temperature=clean.judge.temperature,
            max_tokens=clean.judge.max_tokens,
            swap_twice=clean.judge.swap_twice,
        )
    return config_freeze(
        name=clean.name,
        pool=None,
        mode=clean.mode,
        members=members,
        judge=judge,
        system_prompt=clean.system_prompt,
        rounds=clean.rounds,
        quorum=clean.quorum,
        deadline_s=clean.deadline_s,
        budget_usd=clean.budget_usd,
        debate_judge=clean.debate_judge,
    )


def config_estimate(
    config: dict[str, Any], *, prompt: str = "", system_prompt: str = ""
) -> PoolEstimate:
    """The itemised worst case of one run of ``config`` for this prompt (the pools' method)."""
    prices = price_table()
    text = prompt if prompt.strip() else "x" * (DEFAULT_PROMPT_TOKENS * 4)
    spec = pool_spec(config, prompt=text, system_prompt=system_prompt or None)
    lines = estimate_spec(spec, config.get("labels") or {}, prices)
    priced = sum((line.cost for line in lines if line.cost is not None), Decimal(0))
    unpriced_members = tuple(
        line.label for line in lines if line.role == "member" and line.cost is None
    )
    judge_unpriced = any(line.role == "judge" and line.cost is None for line in lines)
    budget = spec.budget_usd
    return PoolEstimate(
        lines=tuple(lines),
        priced_usd=priced,
        total_usd=None if unpriced_members or judge_unpriced else priced,
        unpriced_members=unpriced_members,
        judge_unpriced=judge_unpriced,
        prompt_tokens=estimate_tokens(text),
        budget_usd=budget,
    )
