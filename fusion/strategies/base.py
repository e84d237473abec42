"""The strategy contract: the engine runs calls, a strategy decides what they ask.

A strategy says how many member rounds there are, builds each member's messages, and turns
the usable candidates into a ``Verdict`` through ``JudgeCall``, the engine's judged call that
streams ``judge.delta`` events, retries, records the call and returns the full reply text.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar

from fusion.judge import Verdict
from fusion.types import Member, Message, Mode, RunSpec

T = TypeVar("T")


@dataclass(frozen=True)
class JudgeCandidate:
    """A member's latest usable answer, as handed to the judge."""

    id: str
    round: int
    text: str


class JudgeCall(Protocol):
    async def __call__(
        self,
        messages: tuple[Message, ...],
        *,
        judge_id: str,
        phase: str,
        labels: Mapping[str, str],
    ) -> str:
        """Run one judge pass and return its whole reply; raise ``FusionError`` on failure."""
        ...


@dataclass(frozen=True)
class JudgePass:
    """One judge call a strategy will make, for cost estimates."""

    phase: str
    # Extra input beyond the question and the answers (e.g. the analysis), in tokens.
    extra_input_tokens: int = 0


class Strategy(ABC):
    mode: ClassVar[Mode]

    def member_rounds(self, spec: RunSpec) -> int:
        """How many times each member is asked (1; debate: 1 + revision rounds)."""
        return 1

    def member_messages(
        self,
        spec: RunSpec,
        member: Member,
        round: int,
        own: str | None,
        others: Sequence[str],
    ) -> tuple[Message, ...]:
        """The messages of ``member``'s call in ``round`` (0 = first answer)."""
        return first_messages(spec, member)

    @abstractmethod
    def judge_passes(self, spec: RunSpec) -> list[JudgePass]:
        """The judge calls this strategy makes with two or more candidates."""

    @abstractmethod
    async def judge(
        self, spec: RunSpec, candidates: Sequence[JudgeCandidate], call: JudgeCall
    ) -> Verdict:
        """Reach a verdict on two or more candidates."""

    def answer(self, verdict: Verdict, candidates: Sequence[JudgeCandidate]) -> str | None:
        """The run's final answer: the synthesis if there is one, else the winner's text."""
        if verdict.synthesis is not None:
            return verdict.synthesis
        return next((c.text for c in candidates if c.id == verdict.winner), None)


def first_messages(spec: RunSpec, member: Member) -> tuple[Message, ...]:
    system = member.system_prompt or spec.system_prompt
    user = Message("user", spec.prompt)
    return (Message("system", system), user) if system else (user,)


async def first_successes(aws: Sequence[Awaitable[T]]) -> list[T]:
    """Await all; return the successes, or raise the first error when none succeeded."""
    results = await asyncio.gather(*aws, return_exceptions=True)
    good: list[T] = []
    errors: list[BaseException] = []
    for r in results:
        if isinstance(r, BaseException):
            errors.append(r)
        else:
            good.append(r)
    if not good:
        raise errors[0]
    return good


def get_strategy(mode: Mode) -> Strategy:
    # Imported here: the strategy modules import this one.
    from fusion.strategies.best_of import BestOf
    from fusion.strategies.debate import Debate
    from fusion.strategies.merge import Merge

    strategies: dict[str, type[Strategy]] = {"best_of": BestOf, "merge": Merge, "debate": Debate}
    try:
        return strategies[mode]()
    except KeyError:
        raise ValueError(f"unknown fusion mode {mode!r}") from None
