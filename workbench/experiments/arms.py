"""From what a person chose (pools and their fusion modes, which comparisons, a grader) to
frozen arm configurations and their cost estimate over a dataset.

Every arm goes through the pools' own validation and freezing (``pools.inputs.validate_pool``,
``runs.launch.freeze_clean``), so an arm's runs look like any other run of the workbench.

The estimate ends in a token (an HMAC of the dataset, the frozen arms, the grader and the
total): starting an experiment takes the token of the estimate the person saw, so nothing
starts on an estimate that was never shown, or that prices or arms have changed since.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from django.utils.crypto import constant_time_compare, salted_hmac

from fusion.budget import DEFAULT_MAX_TOKENS
from workbench.accounts.models import User, Workspace
from workbench.experiments import checkers
from workbench.experiments.grading import (
    GRADER_MAX_TOKENS,
    GRADER_SYSTEM,
    MAX_GRADED_ANSWER_CHARS,
    grader_prompt,
)
from workbench.experiments.models import ArmKind, Dataset, DatasetItem
from workbench.keys.selectors import price_table
from workbench.lib.errors import ServiceError
from workbench.pools.estimate import CHARS_PER_TOKEN, estimate_spec
from workbench.pools.inputs import (
    MODES_NEEDING_JUDGE,
    JudgeInput,
    MemberInput,
    PoolInput,
    validate_pool,
)
from workbench.pools.models import Mode, Pool
from workbench.pools.presets import TIMES, self_fusion_temperatures
from workbench.pools.services import pool_input_of, pool_spec
from workbench.runs.launch import freeze_clean, pool_config

MIN_SAMPLES = 2
MAX_SAMPLES = 10
MAX_ARMS = 12
_TOKEN_SALT = "workbench.experiments.estimate"


@dataclass(frozen=True)
class PoolModes:
    """One pool and the fusion modes to run it in, each an arm (empty: its own mode)."""

    pool: Pool
    modes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraderChoice:
    """The model that grades "judge (rubric)" items."""

    credential_id: int | None
    model: str


@dataclass(frozen=True)
class ArmChoice:
    """Which arms to build.

    ``pools`` names pools and modes; ``pool`` (with ``include_pool``) is the shorthand for one
    pool in its own mode. The members of every chosen pool are the single-model arms. Member
    ``base_member`` (0-based) of ``base_pool`` (default: the first pool) is the model that
    self-consistency and self-fusion sample.
    """

    pool: Pool | None = None
    include_pool: bool = True
    pools: tuple[PoolModes, ...] = ()
    include_solos: bool = True
    self_consistency: bool = False
    self_fusion: bool = False
    samples: int = 5
    base_pool: Pool | None = None
    base_member: int = 0

    def pool_modes(self) -> list[PoolModes]:
        if self.pools:
            return list(self.pools)
        if self.pool is not None and self.include_pool:
            return [PoolModes(self.pool)]
        return []

    def member_pools(self) -> list[Pool]:
        """The pools whose members are compared alone, in order, each once."""
        found = [pm.pool for pm in self.pool_modes()]
        if self.pool is not None:
            found.insert(0, self.pool)
        return list({p.pk: p for p in found}.values())

    def all_pools(self) -> list[Pool]:
        return self.member_pools() + ([self.base_pool] if self.base_pool is not None else [])


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
    # The worst case of grading each item's answer (judge items; 0 for the others).
    grading: list[Decimal] = field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum(self.per_item, Decimal(0))

    @property
    def grading_total(self) -> Decimal:
        return sum(self.grading, Decimal(0))

    @property
    def mean(self) -> Decimal:
        return self.total / len(self.per_item) if self.per_item else Decimal(0)


@dataclass(frozen=True)
class ExperimentEstimate:
    arms: list[ArmEstimate]
    items: int
    graded_items: int = 0  # judge (rubric) items, each graded once per arm
    grader_config: dict[str, Any] | None = None
    grader_label: str = ""
    grader_unpriced: bool = False
    token: str = ""

    @property
    def answers_total(self) -> Decimal:
        return sum((arm.total for arm in self.arms), Decimal(0))

    @property
    def grading_total(self) -> Decimal:
        return sum((arm.grading_total for arm in self.arms), Decimal(0))

    @property
    def total(self) -> Decimal:
        return self.answers_total + self.grading_total

    @property
    def unpriced(self) -> bool:
        return any(arm.unpriced for arm in self.arms) or self.grader_unpriced

    @property
    def runs(self) -> int:
        return self.items * len(self.arms)

    @property
    def grading_runs(self) -> int:
        return self.graded_items * len(self.arms)


def _frozen(data: PoolInput, *, user: User, workspace: Workspace) -> dict[str, Any]:
    return freeze_clean(validate_pool(data, user=user, workspace=workspace))


def _mode_label(mode: str) -> str:
    return str(Mode(mode).label).lower()


def _pool_arms(choice: ArmChoice, *, user: User, workspace: Workspace) -> list[ArmPlan]:
    plans: list[ArmPlan] = []
    for chosen in choice.pool_modes():
        pool = chosen.pool
        for mode in dict.fromkeys(chosen.modes or (pool.mode,)):
            if mode not in Mode.values:
                raise ServiceError(f"Unknown fusion mode {mode!r}.", field="pools")
            if mode in MODES_NEEDING_JUDGE and not pool.has_judge:
                raise ServiceError(
                    f"{pool.name} has no judge, and {_mode_label(mode)} needs one to fuse the "
                    "answers: give the pool a judge, or run it as best of.",
                    field="pools",
                    code="needs_judge",
                )
            if mode == pool.mode:
                config = pool_config(pool, user)
            else:
                # The same members and judge, the mode overridden (a debate keeps the pool's
                # rounds, at least one).
                data = replace(pool_input_of(pool), mode=mode, slug="", rounds=max(pool.rounds, 1))
                config = _frozen(data, user=user, workspace=workspace)
            label = f"{pool.name} ({_mode_label(mode)})"
            plans.append(ArmPlan(ArmKind.POOL, label, config, pool))
    return plans


def _solo_arms(choice: ArmChoice, *, user: User, workspace: Workspace) -> list[ArmPlan]:
    plans: list[ArmPlan] = []
    seen: set[tuple[int | None, str, str]] = set()
    for pool in choice.member_pools():
        base = pool_input_of(pool)
        for member in base.members:
            key = (member.credential_id, member.model, member.system_prompt)
            if key in seen:  # the same model in two pools is one arm
                continue
            seen.add(key)
            data = PoolInput(
                name=f"Solo: {member.model}"[:80],
                members=[member],
                system_prompt=base.system_prompt,
            )
            plans.append(
                ArmPlan(ArmKind.SOLO, f"{member.model} alone",
                        _frozen(data, user=user, workspace=workspace), None)
            )  # fmt: skip
    return plans


def _sampled_arms(choice: ArmChoice, *, user: User, workspace: Workspace) -> list[ArmPlan]:
    if not (choice.self_consistency or choice.self_fusion):
        return []
    if not MIN_SAMPLES <= choice.samples <= MAX_SAMPLES:
        raise ServiceError(
            f"Sample each model {MIN_SAMPLES} to {MAX_SAMPLES} times.", field="samples"
        )
    pools = choice.member_pools()
    source = choice.base_pool or (pools[0] if pools else None)
    if source is None:
        raise ServiceError("Choose the pool of the model to sample.", field="base_member")
    sampled = pool_input_of(source)
    if not 0 <= choice.base_member < len(sampled.members):
        raise ServiceError("Choose one of the pool's members.", field="base_member")
    member = sampled.members[choice.base_member]
    n = choice.samples
    # Different temperatures, as the pools' self-fusion preset does: N identical samples at
    # temperature 0 would be one sample N times.
    samples = [replace(member, temperature=t) for t in self_fusion_temperatures(n)]
    plans: list[ArmPlan] = []
    if choice.self_consistency:
        data = PoolInput(name=f"Self-consistency {TIMES}{n}: {member.model}"[:80],
                         mode=Mode.BEST_OF, members=samples,
                         system_prompt=sampled.system_prompt)  # fmt: skip
        plans.append(
            ArmPlan(ArmKind.SELF_CONSISTENCY, f"{member.model} {TIMES}{n}, majority vote",
                    _frozen(data, user=user, workspace=workspace), None, n)
        )  # fmt: skip
    if choice.self_fusion:
        judge = JudgeInput(
            credential_id=member.credential_id, model=member.model, custom_model=True
        )
        data = PoolInput(name=f"Self-fusion {TIMES}{n}: {member.model}"[:80],
                         mode=Mode.MERGE, members=samples, judge=judge,
                         system_prompt=sampled.system_prompt)  # fmt: skip
        plans.append(
            ArmPlan(ArmKind.SELF_FUSION, f"{member.model} {TIMES}{n}, merged",
                    _frozen(data, user=user, workspace=workspace), None, n)
        )  # fmt: skip
    return plans


def arms_plan(*, user: User, workspace: Workspace, choice: ArmChoice) -> list[ArmPlan]:
    """The arms ``choice`` describes; raises ``ServiceError`` naming what cannot run."""
    for pool in choice.member_pools():
        if not pool.members.exists():
            raise ServiceError(f"{pool.name} has no members.", field="pool")
    plans = (
        _pool_arms(choice, user=user, workspace=workspace)
        + (_solo_arms(choice, user=user, workspace=workspace) if choice.include_solos else [])
        + _sampled_arms(choice, user=user, workspace=workspace)
    )
    if not plans:
        raise ServiceError("Choose at least one arm.", field="arms")
    if len(plans) > MAX_ARMS:
        raise ServiceError(
            f"That is {len(plans)} arms; at most {MAX_ARMS} per experiment.", field="arms"
        )
    return plans


# --- the grader ---------------------------------------------------------------------------------


def default_grader(choice: ArmChoice) -> GraderChoice | None:
    """The first chosen pool's judge, else its first member: a model the workspace runs."""
    pools = choice.member_pools() or ([choice.base_pool] if choice.base_pool else [])
    for pool in pools:
        if pool.has_judge:
            return GraderChoice(pool.judge_credential_id, pool.judge_model)
    for pool in pools:
        member = pool.members.order_by("position").first()
        if member is not None:
            return GraderChoice(member.credential_id, member.model)
    return None


def grader_config(*, user: User, workspace: Workspace, grader: GraderChoice) -> dict[str, Any]:
    """The grader as a frozen one-member pool: its grading calls are runs like any other."""
    data = PoolInput(
        name=f"Grader: {grader.model}"[:80],
        members=[
            MemberInput(
                credential_id=grader.credential_id,
                model=grader.model,
                temperature=0.0,
                max_tokens=GRADER_MAX_TOKENS,
                custom_model=True,
            )
        ],
        system_prompt=GRADER_SYSTEM,
    )
    try:
        return _frozen(data, user=user, workspace=workspace)
    except ServiceError as err:
        # Said about the grader, not about "member 1" of a pool nobody sees.
        message = err.message.removeprefix("Member 1: ")
        raise ServiceError(f"The grader: {message}", field="grader", code=err.code) from None


def _answer_tokens(config: dict[str, Any]) -> int:
    """The longest answer an arm can give (what its grader may have to read)."""
    spec = pool_spec(config, prompt="")
    seats = [m.max_tokens for m in spec.members] + ([spec.judge.max_tokens] if spec.judge else [])
    return max(DEFAULT_MAX_TOKENS if t is None else t for t in seats)


def _priced(config: dict[str, Any], prompt: str, prices: dict[str, Any]) -> tuple[Decimal, bool]:
    lines = estimate_spec(pool_spec(config, prompt=prompt), config.get("labels") or {}, prices)
    total = sum((ln.cost for ln in lines if ln.cost is not None), Decimal(0))
    return total, any(ln.cost is None for ln in lines)


def _grading_cost(
    grader: dict[str, Any], item: DatasetItem, answer_tokens: int, prices: dict[str, Any]
) -> tuple[Decimal, bool]:
    chars = min(MAX_GRADED_ANSWER_CHARS, answer_tokens * CHARS_PER_TOKEN)
    prompt = grader_prompt(
        question=item.prompt,
        expected=item.expected,
        rubric=str(item.checker_args.get("rubric", "")),
        answer="x" * chars,
    )
    return _priced(grader, prompt, prices)


# --- the estimate -------------------------------------------------------------------------------


def estimate_token(
    *, workspace: Workspace, dataset: Dataset, items: Sequence[DatasetItem], estimate_data: Any
) -> str:
    """An HMAC over everything the estimate stands for (signed with SECRET_KEY)."""
    digest = hashlib.sha256()
    for item in items:
        digest.update(f"{item.pk}\x1f{item.checker}\x1f{item.prompt}\x1e".encode())
    payload = json.dumps(
        {"w": workspace.pk, "d": dataset.pk, "items": digest.hexdigest(), "e": estimate_data},
        sort_keys=True,
        default=str,
    )
    return salted_hmac(_TOKEN_SALT, payload).hexdigest()[:40]


def experiment_estimate(
    *,
    user: User,
    workspace: Workspace,
    dataset: Dataset,
    choice: ArmChoice,
    grader: GraderChoice | None = None,
) -> ExperimentEstimate:
    """Every (arm, item) run at its worst, counted as ``pools.estimate`` counts one run, plus
    the grading run of every judge (rubric) item; raises ``ServiceError``."""
    if dataset.workspace_id != workspace.pk or any(
        p.workspace_id != workspace.pk for p in choice.all_pools()
    ):
        raise ServiceError("The dataset and the pools must belong to this workspace.")
    plans = arms_plan(user=user, workspace=workspace, choice=choice)
    items = list(dataset.items.order_by("position"))
    if not items:
        raise ServiceError("The dataset has no items.", field="dataset")
    judged = [item for item in items if item.checker == checkers.JUDGE]
    config = None
    if judged:
        grader = grader or default_grader(choice)
        if grader is None:
            raise ServiceError("Choose a model to grade the judge (rubric) items.", field="grader")
        config = grader_config(user=user, workspace=workspace, grader=grader)
    prices = price_table()
    estimates, grader_unpriced = [], False
    for plan in plans:
        per_item, grading, unpriced = [], [], False
        answer_tokens = _answer_tokens(plan.config)
        for item in items:
            cost, missing = _priced(plan.config, item.prompt, prices)
            per_item.append(cost)
            unpriced = unpriced or missing
            if config is not None and item.checker == checkers.JUDGE:
                cost, missing = _grading_cost(config, item, answer_tokens, prices)
                grader_unpriced = grader_unpriced or missing
                grading.append(cost)
            else:
                grading.append(Decimal(0))
        estimates.append(ArmEstimate(plan, per_item, unpriced, grading))
    estimate = ExperimentEstimate(
        estimates,
        len(items),
        graded_items=len(judged),
        grader_config=config,
        grader_label=f"{grader.model}" if config is not None and grader else "",
        grader_unpriced=grader_unpriced,
    )
    token = estimate_token(
        workspace=workspace,
        dataset=dataset,
        items=items,
        estimate_data={
            "arms": [(a.plan.kind, a.plan.label, a.plan.config, a.plan.samples) for a in estimates],
            "grader": config,
            "total": str(estimate.total),
            "unpriced": estimate.unpriced,
        },
    )
    return replace(estimate, token=token)


def token_matches(estimate: ExperimentEstimate, token: str) -> bool:
    return bool(token) and constant_time_compare(estimate.token, token)
