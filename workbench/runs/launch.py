"""Getting from what a person chose (a pool, or models picked ad hoc) to a frozen
configuration and its cost estimate, the two things ``services.run_create`` takes.

An ad hoc choice goes through the pools' own validation (``pools.inputs.validate_pool``) and
is frozen in exactly the shape ``pools.services.pool_freeze`` gives, so the worker, the run
page and history cannot tell the two apart except by the missing pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from workbench.accounts.models import User, Workspace
from workbench.pools.estimate import config_estimate
from workbench.pools.inputs import CleanPool, JudgeInput, MemberInput, PoolInput, validate_pool
from workbench.pools.models import Mode, Pool
from workbench.pools.selectors import pools_for
from workbench.pools.services import judge_seat, pool_freeze, pool_validate_for, seats_freeze

# The cost estimate of a frozen configuration, for the callers that launch runs.
__all__ = [
    "AdhocMember",
    "adhoc_config",
    "config_estimate",
    "freeze_clean",
    "pool_by_ref",
    "pool_config",
]

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
    judge = None if clean.judge is None else judge_seat(clean.judge)
    return seats_freeze(clean, pool=None, members=clean.members, judge=judge)
