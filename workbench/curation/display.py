"""What the curation panel of a run page shows, for one person. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.accounts.models import Membership, User
from workbench.curation import selectors
from workbench.curation.analysis import is_flagged, review_reasons
from workbench.curation.forms import CommentForm, ShareForm
from workbench.curation.models import FUSED, Choice, Judgment
from workbench.lib.markdown import render_markdown
from workbench.runs.models import Candidate, Run


@dataclass
class Option:
    """One answer as a person judges it."""

    member: str
    name: str  # the model's display name, or "Answer C" while blind
    letter: str
    text: str
    ok: bool
    rank: int | None = None
    rating: int | None = None


@dataclass
class PersonPick:
    judgment: Judgment
    outcome: str
    ratings: list[tuple[str, int]] = field(default_factory=list)


def outcome_text(label: str | None, names: dict[str, str]) -> str:
    if label is None:
        return ""
    if label == Choice.TIE:
        return "Tie"
    if label == Choice.NONE:
        return "None is good"
    if label == FUSED:
        return "The fused answer"
    return names.get(label, label)


def hidden_names(run: Run, user: User, mine: Judgment | None) -> bool:
    """Blind mode hides which model wrote what until the person has judged."""
    return selectors.is_blind(run) and mine is None


def ordered_candidates(run: Run, user: User, candidates: list[Candidate]) -> list[Candidate]:
    return selectors.blind_order(run, user, candidates) if selectors.is_blind(run) else candidates


def panel_context(run: Run, user: User, membership: Membership) -> dict[str, Any]:
    judgeable = selectors.is_judgeable(run)
    context: dict[str, Any] = {
        "run": run,
        "judgeable": judgeable,
        "can_pick": membership.can_edit,
        "is_terminal": run.is_terminal,
    }
    if not run.is_terminal:
        return context
    mine = selectors.judgment_of(run, user)
    blind = hidden_names(run, user, mine)
    candidates = ordered_candidates(run, user, selectors.final_candidates(run))
    letters = {c.member: chr(ord("A") + i) for i, c in enumerate(candidates)}
    names = {
        c.member: f"Answer {letters[c.member]}" if blind else selectors.member_label(run, c)
        for c in candidates
    }
    options = [
        Option(
            member=c.member,
            name=names[c.member],
            letter=letters[c.member],
            text=c.text,
            ok=c.status == "done",
            rank=(mine.ranking or {}).get(c.member) if mine else None,
            rating=(mine.ratings or {}).get(c.member) if mine else None,
        )
        for c in candidates
    ]
    judgments = list(selectors.judgments_of(run))
    consensus = selectors.consensus_of(judgments)
    people = [
        PersonPick(
            judgment=j,
            outcome=outcome_text(j.label, names),
            ratings=[(names.get(m, m), r) for m, r in (j.ratings or {}).items()],
        )
        for j in judgments
    ]
    verdict = run.verdict or {}
    judge_winner = verdict.get("winner") or run.winner or None
    fused = selectors.fused_text_of(run)
    context.update(
        {
            "mine": mine,
            "mine_pick": (mine.label if mine else ""),
            "blind": blind,
            "blind_mode": selectors.is_blind(run),
            "options": options,
            "rank_choices": range(1, len(options) + 1),
            "fused_text": fused,
            "people": people,
            "consensus": consensus,
            "consensus_text": outcome_text(consensus.label, names),
            "judge_winner": outcome_text(judge_winner, names) if judge_winner else "",
            "judge_confidence": verdict.get("confidence"),
            "agrees": (
                judge_winner == consensus.label if judge_winner and consensus.label else None
            ),
            "tags": selectors.tags_of(run),
            "workspace_tags": selectors.tags_of_workspace(run.workspace),
            "threads": selectors.comment_threads(run),
            "comment_form": CommentForm(),
            "flagged": is_flagged(run),
            "flagged_by_me": run.review_flags.filter(user=user).exists(),
            "review_reasons": review_reasons(run, flagged=False),
            "share_links": list(selectors.share_links_of(run)) if membership.can_edit else [],
            "share_form": ShareForm(),
            "copy_targets": selectors.copy_targets(user, run) if membership.can_edit else [],
        }
    )
    return context


def share_context(run: Run, show_costs: bool) -> dict[str, Any]:
    """The read-only page of a shared run: no keys, no key labels, no provider call details,
    nothing of other runs; costs only when the link's owner chose to show them."""
    candidates = selectors.final_candidates(run)
    names = {c.member: selectors.member_label(run, c) for c in candidates}
    verdict = run.verdict or {}
    judgments = list(selectors.judgments_of(run))
    consensus = selectors.consensus_of(judgments)
    scores = verdict.get("scores") or {}
    answers = [
        {
            "member": c.member,
            "name": names[c.member],
            "model": c.model,
            "ok": c.status == "done",
            "status": c.get_status_display(),
            "html": render_markdown(c.text) if c.status == "done" else "",
            "score": scores.get(c.member),
            "is_winner": c.member == (verdict.get("winner") or run.winner),
            "cost": c.cost if show_costs else None,
            "tokens": (c.input_tokens, c.output_tokens),
        }
        for c in candidates
    ]
    synthesis = selectors.fused_text_of(run)
    return {
        "run": run,
        "answers": answers,
        "columns": max(1, min(len(answers), 3)),
        "verdict": verdict,
        "judge_model": selectors.judge_model_of(run),
        "judge_winner": outcome_text(verdict.get("winner") or run.winner or None, names),
        "synthesis_html": render_markdown(synthesis) if synthesis else "",
        "people": [PersonPick(judgment=j, outcome=outcome_text(j.label, names)) for j in judgments],
        "consensus_text": outcome_text(consensus.label, names),
        "consensus": consensus,
        "show_costs": show_costs,
        "total_cost": run.total_cost if show_costs else None,
    }
