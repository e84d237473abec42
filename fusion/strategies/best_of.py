"""Best-of: the judge scores every candidate and picks one (optionally twice, positions swapped)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fusion import judge
from fusion.judge import Ballot, Verdict
from fusion.strategies.base import (
    JudgeCall,
    JudgeCandidate,
    JudgePass,
    Strategy,
    first_successes,
)
from fusion.types import RunSpec

ONE_PASS_NOTE = "Only one of the two position-swapped passes gave a verdict."


def ballots(candidates: Sequence[JudgeCandidate], swap_twice: bool) -> list[Ballot]:
    pairs = [(c.id, c.text) for c in candidates]
    out = [judge.make_ballot(pairs)]
    if swap_twice:
        out.append(judge.make_ballot(pairs, swapped=True))
    return out


def judge_ids(count: int) -> list[str]:
    return ["judge" if i == 0 else f"judge#{i + 1}" for i in range(count)]


def fold(verdicts: Sequence[Verdict], expected: int) -> Verdict:
    """One verdict from one or two passes; a lost pass is noted and costs confidence."""
    if len(verdicts) == 2:
        return judge.combine_verdicts(verdicts[0], verdicts[1])
    only = verdicts[0]
    if expected == 2:
        rationale = f"{only.rationale}\n\n{ONE_PASS_NOTE}".strip()
        return replace(only, rationale=rationale, confidence=only.confidence * 0.75)
    return only


class BestOf(Strategy):
    mode = "best_of"

    def judge_passes(self, spec: RunSpec) -> list[JudgePass]:
        count = 2 if spec.judge is not None and spec.judge.swap_twice else 1
        return [JudgePass("score")] * count

    async def judge(
        self, spec: RunSpec, candidates: Sequence[JudgeCandidate], call: JudgeCall
    ) -> Verdict:
        assert spec.judge is not None
        instructions = spec.judge.instructions
        boxes = ballots(candidates, spec.judge.swap_twice)

        async def one(ballot: Ballot, judge_id: str) -> Verdict:
            messages = judge.score_messages(spec.prompt, ballot, instructions)
            text = await call(messages, judge_id=judge_id, phase="score", labels=ballot.labels)
            return judge.parse_verdict(text, ballot)

        verdicts = await first_successes(
            [one(b, j) for b, j in zip(boxes, judge_ids(len(boxes)), strict=True)]
        )
        return fold(verdicts, len(boxes))
