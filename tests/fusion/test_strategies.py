from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import replace

import pytest

from fusion import judge
from fusion.errors import FusionError
from fusion.strategies import JudgeCandidate, get_strategy
from fusion.types import Message

from .runkit import spec

CANDIDATES = [
    JudgeCandidate("m1", 0, "answer one"),
    JudgeCandidate("m2", 0, "answer two"),
    JudgeCandidate("m3", 0, "answer three"),
]


class ScriptedJudge:
    """A JudgeCall that answers from a function of (phase, labels) and logs every pass."""

    def __init__(self, reply: Callable[[str, Mapping[str, str]], str]) -> None:
        self.reply = reply
        self.passes: list[tuple[str, str, dict[str, str], tuple[Message, ...]]] = []

    async def __call__(
        self,
        messages: tuple[Message, ...],
        *,
        judge_id: str,
        phase: str,
        labels: Mapping[str, str],
    ) -> str:
        self.passes.append((judge_id, phase, dict(labels), messages))
        return self.reply(phase, labels)


def prefer(member: str, *, extra: dict[str, object] | None = None) -> Callable[..., str]:
    """A judge that always scores ``member`` highest, whatever label it wears."""

    def reply(phase: str, labels: Mapping[str, str]) -> str:
        if phase == "synthesis":
            return "  The merged answer.  "
        scores = {label: (9 if cid == member else 5) for label, cid in labels.items()}
        winner = next(label for label, cid in labels.items() if cid == member)
        payload = {"scores": scores, "winner": winner, "confidence": 0.9, **(extra or {})}
        return json.dumps(payload)

    return reply


async def test_it_picks_the_best_scored_candidate_in_one_pass() -> None:
    call = ScriptedJudge(prefer("m2"))
    s = spec(mode="best_of")
    strategy = get_strategy("best_of")
    verdict = await strategy.judge(s, CANDIDATES, call)
    assert verdict.winner == "m2" and verdict.passes == 1 and verdict.agreement is None
    assert [p[:2] for p in call.passes] == [("judge", "score")]
    assert strategy.answer(verdict, CANDIDATES) == "answer two"


async def test_it_judges_twice_with_every_candidate_moved_when_asked() -> None:
    call = ScriptedJudge(prefer("m3"))
    verdict = await get_strategy("best_of").judge(spec(swap_twice=True), CANDIDATES, call)
    labels = [p[2] for p in call.passes]
    assert labels[0] == {"A": "m1", "B": "m2", "C": "m3"}
    assert labels[1] == {"A": "m2", "B": "m3", "C": "m1"}
    assert {p[0] for p in call.passes} == {"judge", "judge#2"}
    assert verdict.winner == "m3" and verdict.agreement is True and verdict.passes == 2


async def test_it_records_position_bias_as_disagreement() -> None:
    def first_position_wins(phase: str, labels: Mapping[str, str]) -> str:
        return json.dumps({"scores": {"A": 9, "B": 5, "C": 5}, "winner": "A", "confidence": 1})

    verdict = await get_strategy("best_of").judge(
        spec(swap_twice=True), CANDIDATES, ScriptedJudge(first_position_wins)
    )
    assert verdict.agreement is False
    assert verdict.confidence == pytest.approx(judge.DISAGREEMENT_FACTOR)


async def test_it_keeps_one_pass_when_the_other_fails() -> None:
    def flaky(phase: str, labels: Mapping[str, str]) -> str:
        if labels["A"] == "m2":  # the position-swapped pass
            raise FusionError("judge down")
        return prefer("m1")(phase, labels)

    verdict = await get_strategy("best_of").judge(
        spec(swap_twice=True), CANDIDATES, ScriptedJudge(flaky)
    )
    assert verdict.winner == "m1" and verdict.passes == 1
    assert "Only one" in verdict.rationale and verdict.confidence < 0.9


async def test_it_raises_when_every_pass_fails() -> None:
    def broken(phase: str, labels: Mapping[str, str]) -> str:
        return "no idea"

    with pytest.raises(judge.VerdictParseError):
        await get_strategy("best_of").judge(spec(), CANDIDATES, ScriptedJudge(broken))


async def test_it_merges_with_an_analysis_then_a_streamed_synthesis() -> None:
    extra = {"consensus": ["c"], "unique_insights": {"A": ["u"]}, "blind_spots": ["b"]}
    call = ScriptedJudge(prefer("m1", extra=extra))
    strategy = get_strategy("merge")
    verdict = await strategy.judge(spec(mode="merge"), CANDIDATES, call)
    assert [p[1] for p in call.passes] == ["analysis", "synthesis"]
    synthesis_prompt = call.passes[1][3][1].content
    assert "<analysis>" in synthesis_prompt and '"u"' in synthesis_prompt
    assert verdict.analysis is not None and verdict.analysis.unique_insights == {"m1": ("u",)}
    assert verdict.synthesis == "The merged answer."
    assert strategy.answer(verdict, CANDIDATES) == "The merged answer."


async def test_it_asks_debaters_to_revise_after_seeing_the_others() -> None:
    s = spec(mode="debate", rounds=2, system_prompt="Be kind.")
    strategy = get_strategy("debate")
    assert strategy.member_rounds(s) == 3
    first = strategy.member_messages(s, s.members[0], 0, None, [])
    assert [m.role for m in first] == ["system", "user"]
    revise = strategy.member_messages(s, s.members[0], 1, "mine", ["yours", "theirs"])
    assert revise[0] == Message("system", "Be kind.")
    assert revise[2] == Message("assistant", "mine")
    assert "yours" in revise[-1].content and "mine" not in revise[-1].content


@pytest.mark.parametrize(
    ("final", "phases"), [("merge", ["analysis", "synthesis"]), ("best_of", ["score"])]
)
async def test_it_ends_a_debate_with_the_chosen_judge(final: str, phases: list[str]) -> None:
    s = replace(spec(mode="debate"), debate_judge=final)  # type: ignore[arg-type]
    call = ScriptedJudge(prefer("m2"))
    verdict = await get_strategy("debate").judge(s, CANDIDATES, call)
    assert [p[1] for p in call.passes] == phases
    assert verdict.winner == "m2"


def test_it_rejects_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown fusion mode"):
        get_strategy("vote")  # type: ignore[arg-type]
