"""Debate: members see each other's latest answers (anonymised), critique and revise, for r
rounds; then the judge picks the best final answer or merges them (``RunSpec.debate_judge``).
"""

from __future__ import annotations

from collections.abc import Sequence

from fusion import judge
from fusion.judge import Verdict
from fusion.strategies.base import JudgeCall, JudgeCandidate, JudgePass, Strategy, first_messages
from fusion.strategies.best_of import BestOf
from fusion.strategies.merge import Merge
from fusion.types import Member, Message, RunSpec


class Debate(Strategy):
    mode = "debate"

    def member_rounds(self, spec: RunSpec) -> int:
        return 1 + max(spec.rounds, 0)

    def member_messages(
        self,
        spec: RunSpec,
        member: Member,
        round: int,
        own: str | None,
        others: Sequence[str],
    ) -> tuple[Message, ...]:
        if round == 0 or own is None:
            return first_messages(spec, member)
        return judge.debate_messages(
            question=spec.prompt,
            own_answer=own,
            others=others,
            round=round,
            system_prompt=member.system_prompt or spec.system_prompt,
        )

    def _final(self, spec: RunSpec) -> Strategy:
        return BestOf() if spec.debate_judge == "best_of" else Merge()

    def judge_passes(self, spec: RunSpec) -> list[JudgePass]:
        return self._final(spec).judge_passes(spec)

    async def judge(
        self, spec: RunSpec, candidates: Sequence[JudgeCandidate], call: JudgeCall
    ) -> Verdict:
        return await self._final(spec).judge(spec, candidates, call)
