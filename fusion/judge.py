"""The judge's prompts and the parsing of its verdicts, in one place to read and tune.

Candidates are shown to the judge under anonymous labels ("Answer A", "Answer B", …) in an
order that a second pass can swap, to cancel out position bias (see ``swapped_order``). Each
system prompt
starts with a marker line (``SCORE_MARKER`` …) that tells the simulated provider what is asked.
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from fusion.errors import FusionError
from fusion.types import Message

SCORE_MARKER = "[fusion-judge:score]"
ANALYSIS_MARKER = "[fusion-judge:analysis]"
SYNTHESIS_MARKER = "[fusion-judge:synthesis]"
DEBATE_MARKER = "[fusion-debate:revise]"

# A disagreement between two position-swapped passes halves the confidence.
DISAGREEMENT_FACTOR = 0.5
DEFAULT_CONFIDENCE = 0.5


class VerdictParseError(FusionError):
    """The judge's reply holds no usable verdict."""


# --- ballots ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    label: str  # "A"
    candidate: str  # member id
    text: str


@dataclass(frozen=True)
class Ballot:
    """The candidates as one judge pass sees them: labelled, in one order."""

    entries: tuple[Entry, ...]

    @property
    def labels(self) -> dict[str, str]:
        """Label -> candidate id."""
        return {e.label: e.candidate for e in self.entries}

    def candidate_of(self, label: str) -> str | None:
        norm = normalise_label(label)
        for e in self.entries:
            if e.label == norm:
                return e.candidate
        return None


def swapped_order(count: int) -> list[int]:
    """The positions of the second, position-swapped pass: a rotation by ``count // 2``.

    A reversal would leave the middle candidate of an odd count where it was, so its position
    bias would never be tested. Rotating by half the count moves every candidate (for two or
    more) and each one equally far; the first and last places go to candidates that were in
    the middle. For two candidates it is the same swap as a reversal.
    """
    shift = count // 2
    return [(i + shift) % count for i in range(count)]


def make_ballot(candidates: Sequence[tuple[str, str]], *, swapped: bool = False) -> Ballot:
    """Label ``(candidate id, text)`` pairs A, B, … in the given order, or position-swapped."""
    if len(candidates) > len(string.ascii_uppercase):
        raise ValueError("at most 26 candidates can be judged at once")
    order = swapped_order(len(candidates)) if swapped else range(len(candidates))
    ordered = [candidates[i] for i in order]
    return Ballot(
        tuple(
            Entry(label, cid, text)
            for label, (cid, text) in zip(string.ascii_uppercase, ordered, strict=False)
        )
    )


_LABEL = re.compile(r"^\W*(?:answer|candidate)?[\s_:-]*\(?([A-Za-z])\)?\W*$", re.IGNORECASE)


def normalise_label(label: str) -> str:
    """'Answer b', '(B)', 'b' -> 'B'; anything else unchanged."""
    m = _LABEL.match(label.strip())
    return m.group(1).upper() if m else label.strip()


def _answers_block(question: str, ballot: Ballot) -> str:
    parts = [f"<question>\n{question}\n</question>"]
    parts += [_answer_tag(e) for e in ballot.entries]
    return "\n\n".join(parts)


def _answer_tag(entry: Entry) -> str:
    # A candidate must not be able to close its own frame and speak as another one.
    body = entry.text.replace("</answer>", "<\\/answer>")
    return f'<answer id="{entry.label}">\n{body}\n</answer>'


def _system(marker: str, body: str, instructions: str | None) -> str:
    text = f"{marker}\n{body.strip()}"
    if instructions and instructions.strip():
        text += (
            "\n\nAdditional instructions from the person running this comparison:\n"
            + instructions.strip()
        )
    return text


# --- prompts ---------------------------------------------------------------------------------

SCORE_PROMPT = """
You are an impartial judge comparing several answers to the same question.
The answers are anonymous and shown in an arbitrary order: do not favour an answer for its
position, its length or its style. Judge correctness first, then completeness, clarity and
usefulness to the person who asked.

Score every answer from 0 to 10, pick the best one, and reply with a single JSON object and
nothing else, in this form:
{"scores": {"A": 7.5, "B": 6}, "winner": "A", "confidence": 0.8,
 "rationale": "Two or three sentences on why."}
"confidence" is how sure you are, from 0 to 1, that the winner is really the best answer.
"""

ANALYSIS_PROMPT = """
You are preparing to merge several anonymous answers to the same question into one better
answer. The order of the answers means nothing. Analyse them and reply with a single JSON
object and nothing else, in this form:
{"consensus": ["points most answers agree on"],
 "contradictions": ["where the answers disagree, and which side is right if you can tell"],
 "unique_insights": {"A": ["valuable points only answer A makes"]},
 "blind_spots": ["what every answer misses or gets wrong"],
 "scores": {"A": 7, "B": 5}, "winner": "A", "confidence": 0.7,
 "rationale": "Two or three sentences on the answers' strengths and weaknesses."}
Scores go from 0 to 10; "winner" is the best single answer; "confidence" is from 0 to 1.
"""

SYNTHESIS_PROMPT = """
Write the best possible answer to the question, using the answers and the analysis given.
Keep what is agreed and correct, resolve the contradictions, include the unique insights worth
keeping and cover the blind spots. Reply with the answer only: do not mention the other
answers, their labels, the analysis or this process.
"""

DEBATE_PROMPT = """
{marker} Round {round}. Other participants answered the same question; their latest answers
are below, anonymised and in no particular order.

{answers}

Critique their answers and your own: look for errors, gaps and better arguments. Then reply
with your revised answer only, complete and standing on its own (not a list of changes).
If your answer was already right, keep it and make it clearer.
"""


def score_messages(question: str, ballot: Ballot, instructions: str | None) -> tuple[Message, ...]:
    """Best-of: score every candidate and name a winner."""
    return (
        Message("system", _system(SCORE_MARKER, SCORE_PROMPT, instructions)),
        Message("user", _answers_block(question, ballot)),
    )


def analysis_messages(
    question: str, ballot: Ballot, instructions: str | None
) -> tuple[Message, ...]:
    """Merge, step one: consensus, contradictions, unique insights, blind spots."""
    return (
        Message("system", _system(ANALYSIS_MARKER, ANALYSIS_PROMPT, instructions)),
        Message("user", _answers_block(question, ballot)),
    )


def synthesis_messages(
    question: str, ballot: Ballot, analysis: MergeAnalysis | None, instructions: str | None
) -> tuple[Message, ...]:
    """Merge, step two: write the merged answer (streamed to the user)."""
    user = _answers_block(question, ballot)
    if analysis is not None:
        by_label = {e.candidate: e.label for e in ballot.entries}
        payload = {
            "consensus": list(analysis.consensus),
            "contradictions": list(analysis.contradictions),
            "unique_insights": {
                by_label.get(cid, cid): list(points)
                for cid, points in analysis.unique_insights.items()
            },
            "blind_spots": list(analysis.blind_spots),
        }
        user += f"\n\n<analysis>\n{json.dumps(payload, indent=1, ensure_ascii=False)}\n</analysis>"
    return (
        Message("system", _system(SYNTHESIS_MARKER, SYNTHESIS_PROMPT, instructions)),
        Message("user", user),
    )


def debate_messages(
    *,
    question: str,
    own_answer: str,
    others: Sequence[str],
    round: int,
    system_prompt: str | None,
) -> tuple[Message, ...]:
    """A debate round for one member: its earlier answer, the others' latest, then revise."""
    ballot = make_ballot([(str(i), text) for i, text in enumerate(others)])
    answers = "\n\n".join(_answer_tag(e) for e in ballot.entries)
    ask = DEBATE_PROMPT.format(marker=DEBATE_MARKER, round=round, answers=answers).strip()
    messages: list[Message] = []
    if system_prompt:
        messages.append(Message("system", system_prompt))
    messages += [
        Message("user", question),
        Message("assistant", own_answer),
        Message("user", ask),
    ]
    return tuple(messages)


# --- verdicts --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MergeAnalysis:
    consensus: tuple[str, ...] = ()
    contradictions: tuple[str, ...] = ()
    unique_insights: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # by candidate
    blind_spots: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What the judge decided, in candidate ids (labels resolved)."""

    winner: str | None
    scores: Mapping[str, float]
    rationale: str
    confidence: float
    analysis: MergeAnalysis | None = None
    synthesis: str | None = None
    passes: int = 1
    # Whether position-swapped passes picked the same winner; None with a single pass.
    agreement: bool | None = None
    # False when there was nothing to judge (a single usable candidate).
    judged: bool = True


def extract_json(text: str) -> dict[str, Any]:
    """The verdict object in a reply: bare, in a code fence, or amid prose."""
    keys = {"scores", "winner", "consensus", "rationale"}
    first: dict[str, Any] | None = None
    # Tried in this order, lazily: a judge that follows the prompt replies with bare JSON,
    # and that is parsed once, without scanning the text for fences and braces.
    for raw in _json_candidates(text):
        value = _loads_tolerant(raw)
        if isinstance(value, dict):
            if keys & value.keys():
                return value
            if first is None:
                first = value
    if first is not None:
        return first
    raise VerdictParseError(f"the judge's reply holds no JSON object: {_snippet(text)}")


def _loads_tolerant(raw: str) -> Any:
    """``raw`` as JSON, or with trailing commas dropped; None when it is neither."""
    try:
        return json.loads(raw)
    except ValueError:
        pass
    try:
        return json.loads(re.sub(r",\s*([}\]])", r"\1", raw))
    except ValueError:
        return None


def _json_candidates(text: str) -> Iterable[str]:
    yield text.strip()
    for m in re.finditer(r"```(?:json|JSON)?\s*(.*?)```", text, re.S):
        yield m.group(1)
    yield from _balanced_objects(text)


def _balanced_objects(text: str) -> Iterable[str]:
    """Every top-level ``{...}`` span, skipping braces inside JSON strings."""
    depth, start, in_str, escaped = 0, -1, False, False
    for i, ch in enumerate(text):
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"' and depth > 0:
            in_str = True
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1]


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return repr(text if len(text) <= limit else text[:limit] + "…")


def _number(value: Any) -> float | None:
    if isinstance(value, Mapping):
        value = value.get("score", value.get("value"))
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = re.search(r"-?\d+(?:\.\d+)?", value)
        return float(m.group()) if m else None
    return None


def _scores(raw: Any, ballot: Ballot) -> dict[str, float]:
    pairs: list[tuple[Any, Any]] = []
    if isinstance(raw, Mapping):
        pairs = list(raw.items())
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                label = item.get("label", item.get("answer", item.get("id")))
                pairs.append((label, item.get("score")))
    out: dict[str, float] = {}
    for label, value in pairs:
        cid = ballot.candidate_of(str(label))
        score = _number(value)
        if cid is not None and score is not None:
            out[cid] = score
    return out


def _strings(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,) if raw.strip() else ()
    if isinstance(raw, list):
        return tuple(str(x) for x in raw if str(x).strip())
    return ()


def _confidence(raw: Any) -> float:
    value = _number(raw)
    if value is None:
        return DEFAULT_CONFIDENCE
    if value > 1.0:  # "85" or "85%"
        value /= 100.0
    return min(max(value, 0.0), 1.0)


def _best(scores: Mapping[str, float], prefer: str | None = None) -> str | None:
    if not scores:
        return prefer
    top = max(scores.values())
    if prefer is not None and scores.get(prefer) == top:
        return prefer
    return next(cid for cid, s in scores.items() if s == top)


def parse_verdict(text: str, ballot: Ballot, *, analysis: bool = False) -> Verdict:
    """Parse a score (or, with ``analysis``, a merge-analysis) reply into a ``Verdict``."""
    data = extract_json(text)
    scores = _scores(data.get("scores"), ballot)
    winner_raw = data.get("winner", data.get("best"))
    winner = ballot.candidate_of(str(winner_raw)) if winner_raw is not None else None
    if winner is None:
        winner = _best(scores)
    if winner is None and not analysis:
        raise VerdictParseError(f"the judge named no known answer: {_snippet(text)}")
    merge: MergeAnalysis | None = None
    if analysis:
        insights: dict[str, tuple[str, ...]] = {}
        raw_insights = data.get("unique_insights")
        if isinstance(raw_insights, Mapping):
            for label, points in raw_insights.items():
                cid = ballot.candidate_of(str(label))
                if cid is not None and _strings(points):
                    insights[cid] = _strings(points)
        merge = MergeAnalysis(
            consensus=_strings(data.get("consensus")),
            contradictions=_strings(data.get("contradictions")),
            unique_insights=insights,
            blind_spots=_strings(data.get("blind_spots")),
        )
    return Verdict(
        winner=winner,
        scores=scores,
        rationale=str(data.get("rationale") or data.get("reason") or "").strip(),
        confidence=_confidence(data.get("confidence")),
        analysis=merge,
    )


def _union(a: Sequence[str], b: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*a, *b]))


def combine_verdicts(first: Verdict, second: Verdict) -> Verdict:
    """Fold two position-swapped passes into one; disagreement lowers the confidence."""
    ids = list(dict.fromkeys([*first.scores, *second.scores]))
    scores = {}
    for cid in ids:
        vals = [v.scores[cid] for v in (first, second) if cid in v.scores]
        scores[cid] = sum(vals) / len(vals)
    agree = first.winner == second.winner
    confidence = (first.confidence + second.confidence) / 2
    if not agree:
        confidence *= DISAGREEMENT_FACTOR
    winner = _best(scores, prefer=first.winner) if scores else first.winner
    note = (
        "Both passes (answers in swapped positions) picked the same winner."
        if agree
        else f"The passes disagreed ({first.winner} vs {second.winner}); scores were averaged."
    )
    parts = dict.fromkeys(x for x in (first.rationale, second.rationale, note) if x)
    rationale = "\n\n".join(parts)
    merged_analysis = first.analysis
    if first.analysis is not None and second.analysis is not None:
        a, b = first.analysis, second.analysis
        insights = dict(a.unique_insights)
        for cid, points in b.unique_insights.items():
            insights[cid] = _union(insights.get(cid, ()), points)
        merged_analysis = MergeAnalysis(
            consensus=_union(a.consensus, b.consensus),
            contradictions=_union(a.contradictions, b.contradictions),
            unique_insights=insights,
            blind_spots=_union(a.blind_spots, b.blind_spots),
        )
    return replace(
        first,
        winner=winner,
        scores=scores,
        rationale=rationale,
        confidence=confidence,
        analysis=merged_analysis,
        passes=first.passes + second.passes,
        agreement=agree,
    )


def sole_verdict(candidate: str) -> Verdict:
    """The verdict when only one candidate is usable: no judge call is made."""
    return Verdict(
        winner=candidate,
        scores={},
        rationale="Only one usable candidate; the judge was not asked.",
        confidence=1.0,
        passes=0,
        judged=False,
    )


def verdict_to_dict(verdict: Verdict) -> dict[str, Any]:
    a = verdict.analysis
    return {
        "winner": verdict.winner,
        "scores": dict(verdict.scores),
        "rationale": verdict.rationale,
        "confidence": verdict.confidence,
        "analysis": None
        if a is None
        else {
            "consensus": list(a.consensus),
            "contradictions": list(a.contradictions),
            "unique_insights": {k: list(v) for k, v in a.unique_insights.items()},
            "blind_spots": list(a.blind_spots),
        },
        "synthesis": verdict.synthesis,
        "passes": verdict.passes,
        "agreement": verdict.agreement,
        "judged": verdict.judged,
    }


def verdict_from_dict(data: Mapping[str, Any]) -> Verdict:
    raw = data.get("analysis")
    analysis = None
    if isinstance(raw, Mapping):
        analysis = MergeAnalysis(
            consensus=tuple(raw.get("consensus", ())),
            contradictions=tuple(raw.get("contradictions", ())),
            unique_insights={k: tuple(v) for k, v in raw.get("unique_insights", {}).items()},
            blind_spots=tuple(raw.get("blind_spots", ())),
        )
    return Verdict(
        winner=data.get("winner"),
        scores={k: float(v) for k, v in data.get("scores", {}).items()},
        rationale=data.get("rationale", ""),
        confidence=float(data.get("confidence", DEFAULT_CONFIDENCE)),
        analysis=analysis,
        synthesis=data.get("synthesis"),
        passes=int(data.get("passes", 1)),
        agreement=data.get("agreement"),
        judged=bool(data.get("judged", True)),
    )
