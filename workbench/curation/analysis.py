"""What a workspace's judgments add up to: judge reliability, the people's leaderboard and the
review queue. Reads only; the arithmetic is in ``stats``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Prefetch, QuerySet

from workbench.accounts.models import User, Workspace
from workbench.curation import stats
from workbench.curation.models import DECIDED, Choice, Judgment
from workbench.curation.selectors import (
    JUDGEABLE,
    consensus_of,
    final_candidates,
    judge_model_of,
)
from workbench.runs.models import Candidate, CandidateStatus, Run

LOW_CONFIDENCE = 0.6
# Judge scores (0-10) this far apart, or this many contradictions found by a merge analysis,
# mean the answers disagree strongly: worth a person's look even when the judge was sure.
SCORE_SPREAD = 5.0
CONTRADICTIONS = 2
QUEUE_SCAN = 500


def _judged_runs(workspace: Workspace, tag: str = "") -> QuerySet[Run]:
    """Runs at least one person judged (a pick, a tie or "none"), with what the arithmetic
    reads prefetched."""
    runs = Run.objects.filter(workspace=workspace, status__in=JUDGEABLE, judgments__isnull=False)
    if tag:
        runs = runs.filter(tags__name=tag)
    return (
        runs.distinct()
        .select_related("pool")
        .prefetch_related(
            Prefetch(
                "judgments",
                queryset=Judgment.objects.filter(choice__in=DECIDED).order_by("created_at"),
            ),
            Prefetch("candidates", queryset=Candidate.objects.all()),
        )
    )


# --- judge reliability ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementRow:
    group: str  # "judge" or "pool"
    name: str
    stats: stats.Agreement

    @property
    def percent(self) -> float:
        return 100 * (self.stats.rate or 0)


@dataclass(frozen=True)
class Reliability:
    overall: stats.Agreement
    by_judge: list[AgreementRow]
    by_pool: list[AgreementRow]
    excluded: int  # runs people judged without a clear single winner (tie, none, split)


def judge_agreement(workspace: Workspace) -> Reliability:
    """How often the judge's winner is the people's consensus winner.

    Labels are candidate positions, so kappa compares "which seat won" across runs; runs where
    the people agree on no single answer (a split, a tie, "none is good", the fused answer)
    have no label to compare and are counted as excluded.
    """
    pairs_by_judge: dict[str, list[tuple[int, int]]] = {}
    pairs_by_pool: dict[str, list[tuple[int, int]]] = {}
    everything: list[tuple[int, int]] = []
    excluded = 0
    for run in _judged_runs(workspace).exclude(winner=""):
        positions = {c.member: c.position for c in final_candidates(run)}
        people = consensus_of(list(run.judgments.all())).label
        if run.winner not in positions or people not in positions:
            excluded += 1
            continue
        pair = (positions[run.winner], positions[people])
        everything.append(pair)
        pairs_by_judge.setdefault(judge_model_of(run) or "unknown judge", []).append(pair)
        pairs_by_pool.setdefault(run.pool_name or "Ad hoc", []).append(pair)

    def rows(group: str, pairs: dict[str, list[tuple[int, int]]]) -> list[AgreementRow]:
        found = [AgreementRow(group, name, stats.agreement_of(p)) for name, p in pairs.items()]
        return sorted(found, key=lambda r: (-r.stats.total, r.name))

    return Reliability(
        overall=stats.agreement_of(everything),
        by_judge=rows("judge", pairs_by_judge),
        by_pool=rows("pool", pairs_by_pool),
        excluded=excluded,
    )


# --- leaderboard ---------------------------------------------------------------------------------


def judgment_comparisons(judgment: Judgment, candidates: list[Candidate]) -> list[stats.Comparison]:
    """The pairwise preferences one judgment states, between models.

    A full ranking states every pair; without one, a pick beats each other answer and a tie
    ties them all. "None is good" and a pick of the fused answer say nothing between models.

    Seats, not models, are compared: with self-fusion the same model holds several seats, and
    a pair of its own seats says nothing about it, so that pair is dropped; each seat's pairs
    with other models count. Seats X > Y > X' give X one win and one loss against Y.
    """
    done = [c for c in candidates if c.status == CandidateStatus.DONE]
    found: list[stats.Comparison] = []
    ranks = {m: r for m, r in (judgment.ranking or {}).items() if any(c.member == m for c in done)}
    if len(ranks) >= 2:
        ranked = [c for c in done if c.member in ranks]
        for i, a in enumerate(ranked):
            for b in ranked[i + 1 :]:
                ra, rb = ranks[a.member], ranks[b.member]
                found.append((a.model, b.model, 0.5 if ra == rb else float(ra < rb)))
        return found
    if judgment.choice == Choice.TIE:
        for i, a in enumerate(done):
            found += [(a.model, b.model, 0.5) for b in done[i + 1 :]]
    elif judgment.choice == Choice.PICK:
        winner = next((c for c in done if c.member == judgment.winner), None)
        if winner is not None:
            found += [(winner.model, c.model, 1.0) for c in done if c is not winner]
    return [c for c in found if c[0] != c[1]]


def answer_outcome(run: Run, candidates: list[Candidate]) -> stats.AnswerOutcome | None:
    """Which models answered the run and which of them (if any) people chose.

    A model counts once per run however many seats it had (self-fusion), and won when the
    people's consensus is one of its seats. A run where a single model gave every answer is
    left out: its model could not have lost. Ties, "none is good", the fused answer and a
    split are judged runs that no model's answer won.
    """
    done = [c for c in candidates if c.status == CandidateStatus.DONE]
    models = frozenset(c.model for c in done)
    judgments = list(run.judgments.all())
    if len(models) < 2 or not judgments:
        return None
    people = consensus_of(judgments).label
    winner = next((c.model for c in done if c.member == people), None)
    return models, winner


def leaderboard_of(workspace: Workspace, *, tag: str = "") -> list[stats.Standing]:
    """Standings from people's preferences: Bradley-Terry from each judgment's pairwise
    comparisons, and how often each model's answer was the one people chose."""
    groups: list[list[stats.Comparison]] = []
    outcomes: list[stats.AnswerOutcome] = []
    for run in _judged_runs(workspace, tag):
        candidates = final_candidates(run)
        outcome = answer_outcome(run, candidates)
        if outcome is not None:
            outcomes.append(outcome)
        for judgment in run.judgments.all():
            comparisons = judgment_comparisons(judgment, candidates)
            if comparisons:
                groups.append(comparisons)
    return stats.leaderboard(groups, rounds=200, seed=0, answers=outcomes)


# --- review queue ---------------------------------------------------------------------------


def review_reasons(run: Run, flagged: bool) -> list[str]:
    reasons = []
    if flagged:
        reasons.append("flagged by a teammate")
    verdict = run.verdict or {}
    confidence = verdict.get("confidence")
    if confidence is not None and float(confidence) < LOW_CONFIDENCE:
        reasons.append(f"judge {round(float(confidence) * 100)}% sure")
    if verdict.get("agreement") is False:
        reasons.append("position-swapped judging disagreed")
    scores = [float(v) for v in (verdict.get("scores") or {}).values()]
    contradictions = ((verdict.get("analysis") or {}).get("contradictions")) or []
    if (len(scores) >= 2 and max(scores) - min(scores) >= SCORE_SPREAD) or len(
        contradictions
    ) >= CONTRADICTIONS:
        reasons.append("the answers disagree strongly")
    return reasons


@dataclass(frozen=True)
class QueueItem:
    run: Run
    reasons: list[str]


def review_queue(workspace: Workspace, user: User) -> list[QueueItem]:
    """Runs that need a person, which this user has not judged yet, newest first."""
    decided = Judgment.objects.filter(user=user, choice__in=DECIDED).values("run_id")
    runs: Iterable[Run] = (
        Run.objects.filter(workspace=workspace, status__in=JUDGEABLE)
        .exclude(pk__in=decided)
        .prefetch_related("review_flags")
        .order_by("-created_at")[:QUEUE_SCAN]
    )
    items = []
    for run in runs:
        reasons = review_reasons(run, flagged=bool(run.review_flags.all()))
        if reasons:
            items.append(QueueItem(run, reasons))
    return items


def is_flagged(run: Run) -> bool:
    return run.review_flags.exists()
