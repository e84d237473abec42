"""Reads for curation, always scoped to one run the caller already reached through its
workspace, or to one workspace."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db.models import QuerySet
from django.http import Http404

from workbench.accounts.models import Role, User, Workspace
from workbench.curation.models import (
    DECIDED,
    FUSED,
    Choice,
    Comment,
    Judgment,
    RunTag,
    ShareLink,
)
from workbench.runs.engine_bridge import spec_dict_of
from workbench.runs.models import TERMINAL_STATUSES, Candidate, CandidateStatus, Run, RunStatus

T = TypeVar("T")

# Runs people can judge: the candidates stand (the judge may have failed).
JUDGEABLE = (RunStatus.FINISHED, RunStatus.FINISHED_WITHOUT_VERDICT)


def is_judgeable(run: Run) -> bool:
    return run.status in JUDGEABLE


def final_candidates(run: Run) -> list[Candidate]:
    """Each member's last answer (a debate's last round), in pool order: what is judged.

    Reads ``run.candidates.all()``, so a caller that prefetched the candidates (analysis,
    exports) costs no query here.
    """
    last: dict[str, Candidate] = {}
    for candidate in sorted(run.candidates.all(), key=lambda c: (c.round, c.position, c.member)):
        last[candidate.member] = candidate
    return sorted(last.values(), key=lambda c: (c.position, c.member))


def judged_candidates(run: Run) -> list[Candidate]:
    return [c for c in final_candidates(run) if c.status == CandidateStatus.DONE]


def member_label(run: Run, candidate: Candidate) -> str:
    labels = (run.config or {}).get("labels") or {}
    return str(labels.get(candidate.member) or candidate.model)


def judge_model_of(run: Run) -> str:
    judge = spec_dict_of(run.config or {}).get("judge") or {}
    return str(judge.get("model") or "")


def fused_text_of(run: Run) -> str:
    """The judge's synthesis when it wrote one (merge, debate); a best-of run has none of its
    own, its fused text is the winner's."""
    synthesis = (run.verdict or {}).get("synthesis") or ""
    return str(synthesis or (run.fused_text if run.mode != "best_of" else ""))


def blind_order(run: Run, user: User, items: list[T]) -> list[T]:
    """The answers (candidates or member ids, in pool order) shuffled the same way every time
    for this person and run, and differently for the next person, so position bias does not
    add up across a team."""
    shuffled = list(items)
    random.Random(f"{user.pk}:{run.pk}").shuffle(shuffled)
    return shuffled


def is_blind(run: Run) -> bool:
    """Blind mode is on for the run's workspace or for its pool (the pool adds to the
    workspace, it cannot turn a blind workspace's runs back on). A run whose pool was deleted
    follows its workspace."""
    pool = run.pool
    return bool(run.workspace.blind_mode or (pool is not None and pool.blind_mode))


# --- judgments -------------------------------------------------------------------------------


def judgments_of(run: Run) -> QuerySet[Judgment]:
    return run.judgments.select_related("user").order_by("created_at")


def judgment_of(run: Run, user: User) -> Judgment | None:
    return run.judgments.filter(user=user).first()


def has_decided(run: Run, user: User) -> bool:
    """Whether the person said which answer is best (a pick, a tie or "none is good"); a
    gold answer or ratings alone do not count."""
    return run.judgments.filter(user=user, choice__in=DECIDED).exists()


def runs_decided_by(user: User, run_ids: list[Any]) -> set[Any]:
    return set(
        Judgment.objects.filter(user=user, run_id__in=run_ids, choice__in=DECIDED).values_list(
            "run_id", flat=True
        )
    )


@dataclass(frozen=True)
class Consensus:
    label: str | None  # member id, "fused", "tie", "none"; None when split or nobody judged
    count: int
    total: int
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def split(self) -> bool:
        return self.total > 0 and self.label is None


def consensus_of(judgments: list[Judgment] | QuerySet[Judgment]) -> Consensus:
    """The majority label: the one more people chose than any other (a tie at the top is a
    split, with no consensus)."""
    counts = Counter(j.label for j in judgments if j.label)
    total = sum(counts.values())
    if not counts:
        return Consensus(None, 0, 0, {})
    ranked = counts.most_common()
    top, count = ranked[0]
    if len(ranked) > 1 and ranked[1][1] == count:
        return Consensus(None, count, total, dict(counts))
    return Consensus(top, count, total, dict(counts))


def text_for_label(run: Run, label: str | None, candidates: list[Candidate]) -> str:
    if not label or label in (Choice.TIE, Choice.NONE):
        return ""
    if label == FUSED:
        return fused_text_of(run)
    found = next((c for c in candidates if c.member == label), None)
    return found.text if found else ""


def gold_sort_key(judgment: Judgment) -> tuple[Any, int]:
    return (judgment.gold_updated_at or judgment.updated_at, judgment.pk or 0)


def golds_of(judgments: list[Judgment] | QuerySet[Judgment]) -> list[Judgment]:
    """The judgments that carry a gold answer, the one exports use first (``gold_of``)."""
    written = [j for j in judgments if j.gold_answer.strip()]
    return sorted(written, key=gold_sort_key, reverse=True)


def gold_of(judgments: list[Judgment] | QuerySet[Judgment]) -> str:
    """The run's gold answer: the one whose text was changed most recently, by anyone.

    Not a consensus: gold answers are free text and two people rarely write the same one.
    The newest wins because a gold answer is refined, not voted on: teammates start theirs
    from the last one and improve it. The time is that of the gold text itself
    (``gold_updated_at``), so editing a pick or a rationale later does not change which gold
    answer a run exports; equal times fall to the later judgment (its id).
    """
    written = golds_of(judgments)
    return written[0].gold_answer if written else ""


# --- comments, tags, links ---------------------------------------------------------------------


@dataclass
class Thread:
    comment: Comment
    replies: list[Comment]


def comment_threads(run: Run) -> list[Thread]:
    threads: dict[int, Thread] = {}
    replies: list[Comment] = []
    for comment in run.comments.select_related("author").order_by("created_at", "id"):
        if comment.parent_id is None:
            threads[comment.pk] = Thread(comment, [])
        else:
            replies.append(comment)
    for reply in replies:
        if reply.parent_id in threads:
            threads[reply.parent_id].replies.append(reply)
    return list(threads.values())


def comment_in_run(run: Run, comment_id: int) -> Comment:
    try:
        return run.comments.get(pk=comment_id)
    except (Comment.DoesNotExist, ValueError):
        raise Http404 from None


def tags_of(run: Run) -> list[str]:
    return [t.name for t in run.tags.all()]


def tags_of_workspace(workspace: Workspace) -> list[str]:
    names = RunTag.objects.filter(run__workspace=workspace).values_list("name", flat=True)
    return sorted(set(names))


def share_links_of(run: Run) -> QuerySet[ShareLink]:
    return run.share_links.select_related("created_by").order_by("-created_at")


def share_link_in_run(run: Run, link_id: int) -> ShareLink:
    try:
        return run.share_links.get(pk=link_id)
    except (ShareLink.DoesNotExist, ValueError):
        raise Http404 from None


def share_link_live(token: str) -> ShareLink:
    """The link behind a token if it still works; 404 for unknown, revoked and expired alike,
    so a visitor cannot tell them apart."""
    try:
        link = ShareLink.objects.select_related("run", "run__workspace").get(token=token)
    except ShareLink.DoesNotExist:
        raise Http404 from None
    if not link.is_live or link.run.status not in TERMINAL_STATUSES:
        raise Http404
    return link


def copy_targets(user: User, run: Run) -> list[Any]:
    """Workspaces the user may copy this run into: member role or higher there, not its own."""
    from workbench.accounts.models import Membership

    memberships = Membership.objects.filter(user=user).select_related("workspace")
    return [
        m.workspace
        for m in memberships
        if m.workspace_id != run.workspace_id and m.has_role(Role.MEMBER)
    ]
