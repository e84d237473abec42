"""The "judge (rubric)" checker: the prompt that asks a judge model to grade one answer, and the
reading of its grade.

The grading call is made as a run of its own (one member: the grader model; see
``services._grade_dispatch``), so it is recorded, priced and shown like every other call. The
prompt follows the judge's scoring format (``fusion.judge.SCORE_MARKER``, the question in
``<question>``, the answer as ``<answer id="A">``), which the simulated provider answers with a
deterministic score: the demo and the tests grade offline.

A grade is read from ``{"correct": true|false, ...}``, or failing that from the score of answer
A out of 10 (``PASS_SCORE`` or more counts as correct). A reply with neither is no grade: the
item waits for people instead of counting as wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from fusion.errors import FusionError
from fusion.judge import SCORE_MARKER, extract_json

PASS_SCORE = 7.0
# The answer shown to the grader is cut here: the grading call must stay bounded.
MAX_GRADED_ANSWER_CHARS = 20_000
GRADER_MAX_TOKENS = 400
DEFAULT_RUBRIC = "The answer is correct when it agrees with the reference answer."

GRADER_SYSTEM = f"""{SCORE_MARKER}
You grade one answer to a task against a rubric and, when there is one, a reference answer.
Judge substance, not style or length. Reply with JSON only, in this shape:
{{"correct": true, "scores": {{"A": 8.5}}, "rationale": "one or two sentences"}}
"correct" is whether the answer meets the rubric; "scores" gives answer A a score from 0 to 10."""


def grader_prompt(*, question: str, expected: str, rubric: str, answer: str) -> str:
    """The user message of a grading call."""
    parts = [f"<question>\n{question.strip()}\n</question>"]
    if expected.strip():
        parts.append(f"<reference_answer>\n{expected.strip()}\n</reference_answer>")
    parts.append(f"<rubric>\n{(rubric or DEFAULT_RUBRIC).strip()}\n</rubric>")
    parts.append(f'<answer id="A">\n{answer[:MAX_GRADED_ANSWER_CHARS].strip()}\n</answer>')
    return "\n\n".join(parts)


@dataclass(frozen=True)
class RubricGrade:
    correct: bool
    score: float | None
    rationale: str

    @property
    def detail(self) -> str:
        score = f"score {self.score:g}/10; " if self.score is not None else ""
        return f"judge (rubric): {score}{self.rationale}".strip()[:500]


def _score(payload: dict[str, object]) -> float | None:
    scores = payload.get("scores")
    if isinstance(scores, dict):
        value = scores.get("A", next(iter(scores.values()), None))
    else:
        value = payload.get("score")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def grade_parse(text: str) -> RubricGrade | None:
    """The grade in a grader's reply, or None when it holds none."""
    # The simulated provider labels its replies "[simulated …]" before the JSON.
    try:
        payload = extract_json(text)
    except (FusionError, ValueError):
        return None
    score = _score(payload)
    correct = payload.get("correct")
    if isinstance(correct, str) and correct.strip().lower() in ("true", "false", "yes", "no"):
        correct = correct.strip().lower() in ("true", "yes")
    if not isinstance(correct, bool):
        if score is None:
            return None
        correct = score >= PASS_SCORE
    rationale = payload.get("rationale")
    return RubricGrade(correct, score, rationale.strip() if isinstance(rationale, str) else "")
