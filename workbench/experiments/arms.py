"""From what a person chose (a pool, and which comparisons) to frozen arm configurations and
their cost estimate over a dataset.

Every arm goes through the pools' own validation and freezing (``pools.inputs.validate_pool``,
``runs.launch.freeze_clean``), so an arm's runs look like any other run of the workbench.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from workbench.accounts.models import User, Workspace
from workbench.experiments.models import ArmKind
from workbench.keys.selectors import price_table
from workbench.lib.errors import ServiceError
from workbench.pools.estimate import estimate_spec
from workbench.pools.inputs import JudgeInput, PoolInput, validate_pool
from workbench.pools.models import Mode, Pool
from workbench.pools.presets import TIMES, self_fusion_temperatures
from workbench.pools.services import pool_input_of, pool_spec
from workbench.runs.launch import freeze_clean, pool_config

MIN_SAMPLES = 2
MAX_SAMPLES = 10
MAX_ARMS = 12


@dataclass(frozen=True)
class ArmChoice:
    """Which arms to build from ``pool``; member ``base_member`` (0-based) of ``base_pool``
    (default: ``pool``) is the model that self-consistency and self-fusion sample."""

    pool: Pool
    include_pool: bool = True
    include_solos: bool = True
    self_consistency: bool = False
    self_fusion: bool = False
    samples: int = 5
    base_pool: Pool | None = None
    base_member: int = 0


@dataclass(frozen=True)
class ArmPlan:
    kind: str
    label: str
    config: dict[str, Any]
    pool: Pool | None
    samples: int = 1


@dataclass(frozen=True)
class ArmEstimate:
    plan: ArmPlan
    per_item: list[Decimal]  # the worst case of each item's run, priced calls only
    unpriced: bool

    @property
    def total(self) -> Decimal:
        return sum(self.per_item, Decimal(0))

    @property
    def mean(self) -> Decimal:
        return self.total / len(self.per_item) if self.per_item else Decimal(0)


@dataclass(frozen=True)
class ExperimentEstimate:
    arms: list[ArmEstimate]
    items: int

    @property
    def total(self) -> Decimal:
        return sum((arm.total for arm in self.arms), Decimal(0))

    @property
    def unpriced(self) -> bool:
        return any(arm.unpriced for arm in self.arms)

    @property
    def runs(self) -> int:
        return self.items * len(self.arms)


def _frozen(data: PoolInput, *, user: User, workspace: Workspace) -> dict[str, Any]:
    return freeze_clean(validate_pool(data, user=user, workspace=workspace))


def arms_plan(*, user: User, workspace: Workspace, choice: ArmChoice) -> list[ArmPlan]:
    """The arms ``choice`` describes; raises ``ServiceError`` naming what cannot run."""
    pool = choice.pool
    base = pool_input_of(pool)
    if not base.members:
        raise ServiceError(f"{pool.name} has no members.", field="pool")
    plans: list[ArmPlan] = []
    if choice.include_pool:
        plans.append(
            ArmPlan(ArmKind.POOL, f"{pool.name} ({pool.get_mode_display().lower()})",
                    pool_config(pool, user), pool)
        )  # fmt: skip
    if choice.include_solos:
        for member in base.members:
            data = PoolInput(
                name=f"Solo: {member.model}"[:80],
                members=[member],
                system_prompt=base.system_prompt,
            )
            plans.append(
                ArmPlan(ArmKind.SOLO, f"{member.model} alone",
                        _frozen(data, user=user, workspace=workspace), None)
            )  # fmt: skip
    if choice.self_consistency or choice.self_fusion:
        if not MIN_SAMPLES <= choice.samples <= MAX_SAMPLES:
            raise ServiceError(
                f"Sample each model {MIN_SAMPLES} to {MAX_SAMPLES} times.", field="samples"
            )
        sampled = pool_input_of(choice.base_pool) if choice.base_pool not in (None, pool) else base
        if not 0 <= choice.base_member < len(sampled.members):
            raise ServiceError("Choose one of the pool's members.", field="base_member")
        member = sampled.members[choice.base_member]
        n = choice.samples
        # Different temperatures, as the pools' self-fusion preset does: N identical samples
        # at temperature 0 would be one sample N times.
        samples = [replace(member, temperature=t) for t in self_fusion_temperatures(n)]
        if choice.self_consistency:
            data = PoolInput(name=f"Self-consistency {TIMES}{n}: {member.model}"[:80],
                             mode=Mode.BEST_OF, members=samples,
                             system_prompt=base.system_prompt)  # fmt: skip
            plans.append(
                ArmPlan(ArmKind.SELF_CONSISTENCY,
                        f"{member.model} {TIMES}{n}, majority vote",
                        _frozen(data, user=user, workspace=workspace), None, n)
            )  # fmt: skip
        if choice.self_fusion:
            judge = JudgeInput(
                credential_id=member.credential_id, model=member.model, custom_model=True
            )
            data = PoolInput(name=f"Self-fusion {TIMES}{n}: {member.model}"[:80],
                             mode=Mode.MERGE, members=samples, judge=judge,
                             system_prompt=base.system_prompt)  # fmt: skip
            plans.append(
                ArmPlan(ArmKind.SELF_FUSION, f"{member.model} {TIMES}{n}, merged",
                        _frozen(data, user=user, workspace=workspace), None, n)
            )  # fmt: skip
    if not plans:
        raise ServiceError("Choose at least one arm.", field="arms")
    if len(plans) > MAX_ARMS:
        raise ServiceError(f"At most {MAX_ARMS} arms per experiment.", field="arms")
    return plans


def arms_estimate(plans: list[ArmPlan], prompts: list[str]) -> ExperimentEstimate:
    """The worst case of every (arm, item) run, counted as ``pools.estimate`` counts one run."""
    prices = price_table()
    estimates = []
    for plan in plans:
        labels = plan.config.get("labels") or {}
        per_item: list[Decimal] = []
        unpriced = False
        for prompt in prompts:
            lines = estimate_spec(pool_spec(plan.config, prompt=prompt), labels, prices)
            unpriced = unpriced or any(line.cost is None for line in lines)
            per_item.append(sum((ln.cost for ln in lines if ln.cost is not None), Decimal(0)))
        estimates.append(ArmEstimate(plan, per_item, unpriced))
    return ExperimentEstimate(estimates, len(prompts))
