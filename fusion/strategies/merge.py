"""Merge: the judge analyses the candidates, then writes a synthesis that streams.

Two calls rather than one: the analysis is JSON that must parse, the synthesis is free text
the user watches being written, and keeping them apart keeps each reliable.
"""

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
from fusion.strategies.best_of import ballots, fold, judge_ids
from fusion.types import RunSpec

# Room for the analysis handed to the synthesis pass, in tokens (for estimates).
ANALYSIS_TOKENS = 600


class Merge(Strategy):
    mode = "merge"

    def judge_passes(self, spec: RunSpec) -> list[JudgePass]:
        count = 2 if spec.judge is not None and spec.judge.swap_twice else 1
        return [JudgePass("analysis")] * count + [JudgePass("synthesis", ANALYSIS_TOKENS)]

    async def judge(
        self, spec: RunSpec, candidates: Sequence[JudgeCandidate], call: JudgeCall
    ) -> Verdict:
        assert spec.judge is not None
        instructions = spec.judge.instructions
        boxes = ballots(candidates, spec.judge.swap_twice)

        async def analyse(ballot: Ballot, judge_id: str) -> Verdict:
            messages = judge.analysis_messages(spec.prompt, ballot, instructions)
            text = await call(messages, judge_id=judge_id, phase="analysis", labels=ballot.labels)
            return judge.parse_verdict(text, ballot, analysis=True)

        verdicts = await first_successes(
            [analyse(b, j) for b, j in zip(boxes, judge_ids(len(boxes)), strict=True)]
        )
        verdict = fold(verdicts, len(boxes))
        messages = judge.synthesis_messages(spec.prompt, boxes[0], verdict.analysis, instructions)
        synthesis = await call(
            messages, judge_id="judge", phase="synthesis", labels=boxes[0].labels
        )
        return replace(verdict, synthesis=synthesis.strip())
