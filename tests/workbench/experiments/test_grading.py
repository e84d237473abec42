"""The judge (rubric) checker's prompt and the reading of a grader's reply."""

from __future__ import annotations

import asyncio

from fusion.providers.simulated import SimulatedProvider
from fusion.types import ChatRequest, Message, TextDelta
from workbench.experiments.grading import GRADER_SYSTEM, grade_parse, grader_prompt


def test_it_reads_a_grade_from_correct_or_from_the_score() -> None:
    sure = grade_parse('{"correct": false, "scores": {"A": 9}, "rationale": "Off topic."}')
    assert sure is not None and sure.correct is False and sure.score == 9
    assert "score 9/10" in sure.detail and "Off topic." in sure.detail
    fenced = grade_parse('Here you go:\n```json\n{"scores": {"A": 7.5}}\n```')
    assert fenced is not None and fenced.correct is True  # 7 or more out of 10
    low = grade_parse('{"score": 3.2, "rationale": "Wrong mechanism."}')
    assert low is not None and low.correct is False
    assert grade_parse('{"correct": "yes"}').correct is True  # type: ignore[union-attr]


def test_it_gives_no_grade_for_a_reply_without_one() -> None:
    assert grade_parse("I think it is fine.") is None
    assert grade_parse('{"rationale": "no verdict"}') is None
    assert grade_parse('{"scores": {"A": "high"}}') is None


def test_it_puts_question_reference_rubric_and_answer_in_the_prompt() -> None:
    prompt = grader_prompt(question="Why blue?", expected="Scattering.", rubric="Names it.",
                           answer="Rayleigh scattering.")  # fmt: skip
    assert "<question>\nWhy blue?\n</question>" in prompt
    assert "<reference_answer>\nScattering.\n</reference_answer>" in prompt
    assert "<rubric>\nNames it.\n</rubric>" in prompt
    assert '<answer id="A">\nRayleigh scattering.\n</answer>' in prompt
    no_reference = grader_prompt(question="q", expected="", rubric="", answer="a")
    assert "reference_answer" not in no_reference and "agrees with the reference" in no_reference


def test_it_grades_offline_with_the_simulated_judge() -> None:
    """The demo's grader, a simulated model, replies with a grade the parser reads, and the
    same answer always gets the same grade."""

    async def reply(answer: str) -> str:
        provider = SimulatedProvider(name="sim")
        prompt = grader_prompt(question="Why is the sky blue?", expected="Scattering.",
                               rubric="", answer=answer)  # fmt: skip
        request = ChatRequest(
            model="sim-judge@ttft=0,tps=0",
            messages=(Message("system", GRADER_SYSTEM), Message("user", prompt)),
        )
        parts = [i.text async for i in provider.stream(request, None) if isinstance(i, TextDelta)]
        return "".join(parts)

    grades = [grade_parse(asyncio.run(reply(f"answer number {i}"))) for i in range(12)]
    assert all(g is not None and g.score is not None for g in grades)
    assert {g.correct for g in grades if g} == {True, False}  # a mix, not one verdict for all
    again = grade_parse(asyncio.run(reply("answer number 3")))
    assert again == grades[3]
