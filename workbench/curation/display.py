"""What the curation panel of a run page shows, for one person. Nothing here writes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workbench.accounts.models import Membership, User
from workbench.curation import selectors
from workbench.curation.analysis import is_flagged, review_reasons
from workbench.curation.blind import blinding_of
from workbench.curation.forms import CommentForm, ShareForm
from workbench.curation.models import FUSED, Choice, Judgment
from workbench.lib.markdown import render_markdown
from workbench.runs.models import Run


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


@dataclass
class Gold:
    """One person's gold answer, as teammates read it and start their own from it."""

    judgment: Judgment
    key: str  # what the "start from" button names: "gold-<judgment id>"
    exported: bool  # the one exports use (selectors.gold_of)
    mine: bool


def outcome_text(label: str | None, names: dict[str, str]) -> str:
    if not label:
        return ""
    if label == Choice.TIE:
        return "Tie"
    if label == Choice.NONE:
        return "None is good"
    if label == FUSED:
        return "The fused answer"
    return names.get(label, label)


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
    blinding = blinding_of(run, user)
    blind = blinding.hidden
    by_member = {c.member: c for c in selectors.final_candidates(run)}
    candidates = [by_member[m] for m in blinding.order]
    letters = {m: blinding.letter(m) for m in blinding.order}
    names = {
        c.member: blinding.alias(c.member) if blind else selectors.member_label(run, c)
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
            outcome=outcome_text(j.label, names) or "not decided yet",
            ratings=[(names.get(m, m), r) for m, r in (j.ratings or {}).items()],
        )
        for j in judgments
    ]
    golds = selectors.golds_of(judgments)
    gold_answers = [
        Gold(judgment=j, key=f"gold-{j.pk}", exported=i == 0, mine=j.user_id == user.pk)
        for i, j in enumerate(golds)
    ]
    verdict = run.verdict or {}
    judge_winner = verdict.get("winner") or run.winner or None
    fused = selectors.fused_text_of(run)
    context.update(
        {
            "mine": mine,
            "mine_pick": (mine.label if mine else ""),
            "blind": blind,
            "blind_mode": blinding.on,
            "gold_answers": gold_answers,
            "others_gold": [g for g in gold_answers if not g.mine],
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
        "people": [
            PersonPick(judgment=j, outcome=outcome_text(j.label, names))
            for j in judgments
            if j.decided
        ],
        "consensus_text": outcome_text(consensus.label, names),
        "consensus": consensus,
        "show_costs": show_costs,
        "total_cost": run.total_cost if show_costs else None,
    }
