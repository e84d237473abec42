"""Starting points offered when creating a pool, built from the models the user can reach.

"Strong" and "cheap" are read off the price table rather than a list of model names that
would go stale: Quality takes the most expensive priced models, Budget the cheapest, each
from different credentials where possible. Unpriced models (embeddings, speech, unknown local
models) are left out, since nothing says what they are good for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from fusion.costs import Price, price_for
from fusion.providers.simulated import parse_model
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential
from workbench.keys.selectors import catalogs_for, credentials_usable_by, price_table
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.models import Mode

TIMES = "\N{MULTIPLICATION SIGN}"
PRESET_SIZE = 3
MAX_SELF_FUSION = 8
# Simulated models made for tests of failure handling, not for a sensible starting pool.
_NOT_FOR_PRESETS = {"sim-flaky", "sim-hang"}
# Made to judge: offered as a judge, not as a member.
_JUDGES_ONLY = {"sim-judge"}


@dataclass(frozen=True)
class Choice:
    credential: Credential
    model: str
    price: Price | None

    @property
    def key(self) -> str:
        """How a form names this choice: "<credential id>:<model>"."""
        return f"{self.credential.pk}:{self.model}"

    @property
    def rank(self) -> tuple[Decimal, int]:
        price = self.price or Price(Decimal(0), Decimal(0))
        # Simulated models share one fictitious price; the longer-winded ones play "strong".
        profile = parse_model(self.model) if self.credential.provider == "simulated" else None
        return (
            price.input_per_million + price.output_per_million,
            profile.answer_tokens if profile else 0,
        )


@dataclass(frozen=True)
class Preset:
    key: str
    title: str
    description: str
    data: PoolInput | None
    unavailable: str = ""

    @property
    def models(self) -> list[str]:
        return [m.model for m in self.data.members] if self.data else []


def model_choices(
    user: User, workspace: Workspace, prices: Mapping[str, Price] | None = None
) -> list[Choice]:
    prices = price_table() if prices is None else prices
    credentials = {c.pk: c for c in credentials_usable_by(user, workspace)}
    choices = []
    for pk, models in catalogs_for(user, workspace).items():
        for model in models:
            if model not in _NOT_FOR_PRESETS:
                choices.append(Choice(credentials[pk], model, price_for(model, prices)))
    return choices


def _spread(choices: list[Choice], size: int) -> list[Choice]:
    """The first ``size`` distinct models in order, one per credential first, then any."""
    picked: list[Choice] = []
    used_credentials: set[int] = set()
    for pass_ in (1, 2):
        for choice in choices:
            if len(picked) == size:
                return picked
            if any(p.model == choice.model for p in picked):
                continue
            if pass_ == 1 and choice.credential.pk in used_credentials:
                continue
            picked.append(choice)
            used_credentials.add(choice.credential.pk)
    return picked


def _member(choice: Choice, temperature: float | None = None) -> MemberInput:
    return MemberInput(
        credential_id=choice.credential.pk, model=choice.model, temperature=temperature
    )


def _judge(choice: Choice) -> JudgeInput:
    return JudgeInput(credential_id=choice.credential.pk, model=choice.model, temperature=0.0)


def quality_preset(choices: list[Choice]) -> Preset:
    priced = sorted((c for c in choices if c.price), key=lambda c: c.rank, reverse=True)
    members = _spread([c for c in priced if c.model not in _JUDGES_ONLY], PRESET_SIZE)
    title, description = (
        "Quality",
        "The strongest models you have keys for, merged by the strongest.",
    )
    if len(members) < 2:
        return Preset("quality", title, description, None, "Needs two priced models.")
    data = PoolInput(
        name="Quality",
        mode=Mode.MERGE,
        members=[_member(c) for c in members],
        judge=_judge(priced[0]),
    )
    return Preset("quality", title, description, data)


def budget_preset(choices: list[Choice]) -> Preset:
    priced = sorted((c for c in choices if c.price), key=lambda c: c.rank)
    members = _spread([c for c in priced if c.model not in _JUDGES_ONLY], PRESET_SIZE)
    title, description = "Budget", "The cheapest models you have keys for; the cheapest one judges."
    if len(members) < 2:
        return Preset("budget", title, description, None, "Needs two priced models.")
    data = PoolInput(
        name="Budget",
        mode=Mode.BEST_OF,
        members=[_member(c) for c in members],
        judge=_judge(priced[0]),
    )
    return Preset("budget", title, description, data)


def self_fusion_temperatures(n: int) -> list[float]:
    """From focused to adventurous: 0.2 … 1.0."""
    if n == 1:
        return [0.7]
    return [round(0.2 + i * 0.8 / (n - 1), 2) for i in range(n)]


def self_fusion_preset(choice: Choice, n: int = 3) -> Preset:
    n = max(2, min(n, MAX_SELF_FUSION))
    data = PoolInput(
        name=f"Self-fusion {TIMES}{n}: {choice.model}"[:80],
        mode=Mode.MERGE,
        members=[_member(choice, t) for t in self_fusion_temperatures(n)],
        judge=_judge(choice),
    )
    return Preset(
        "self",
        f"Self-fusion {TIMES}{n}",
        "One model answers several times at different temperatures, then merges its answers.",
        data,
    )


def default_self_choice(choices: list[Choice]) -> Choice | None:
    """A middle-of-the-range model: good enough to be worth sampling several times."""
    priced = sorted((c for c in choices if c.price), key=lambda c: c.rank)
    if priced:
        return priced[len(priced) // 2]
    return choices[0] if choices else None


def find_choice(choices: list[Choice], key: str) -> Choice | None:
    return next((c for c in choices if c.key == key), None)
