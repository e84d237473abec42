"""Writes for curation: judgments, tags, comments, review flags, share links, run copies.

Access (who may call what) is checked by the interfaces, as everywhere; the rules about the
data itself are checked here.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from workbench.accounts.models import User, Workspace
from workbench.curation.models import (
    FUSED,
    UNDECIDED,
    Choice,
    Comment,
    Judgment,
    ReviewFlag,
    RunTag,
    ShareLink,
)
from workbench.curation.selectors import final_candidates, fused_text_of, is_judgeable
from workbench.lib.errors import ServiceError
from workbench.runs.models import COPIED_FROM, Candidate, Run

MAX_TEXT = 100_000
MAX_COMMENT = 10_000
MAX_TAGS = 20
MAX_SHARE_DAYS = 365
TAG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _clean_numbers(
    raw: dict[str, Any] | None, members: set[str], low: int, high: int, what: str
) -> dict[str, int]:
    cleaned: dict[str, int] = {}
    for member, value in (raw or {}).items():
        if value in (None, ""):
            continue
        if member not in members:
            raise ServiceError(f"There is no answer {member} to {what}.", field=what)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ServiceError(f"A {what} is a whole number.", field=what) from None
        if not low <= number <= high:
            raise ServiceError(f"A {what} goes from {low} to {high}.", field=what)
        cleaned[member] = number
    return cleaned


def _clean_text(value: str | None, *, limit: int = MAX_TEXT, field: str = "") -> str:
    text = (value or "").strip()
    if len(text) > limit:
        raise ServiceError(f"That text is too long (at most {limit:,} characters).", field=field)
    if "\x00" in text:
        # PostgreSQL cannot store it, and no person types it.
        raise ServiceError("That text holds a NUL character.", field=field)
    return text


def _set_gold(judgment: Judgment, gold_answer: str | None) -> None:
    if gold_answer is None:
        return
    text = _clean_text(gold_answer, field="gold_answer")
    if text != judgment.gold_answer:
        judgment.gold_answer = text
        judgment.gold_updated_at = timezone.now() if text else None


@transaction.atomic
def judgment_save(
    *,
    run: Run,
    user: User,
    choice: str,
    winner: str = "",
    ranking: dict[str, Any] | None = None,
    ratings: dict[str, Any] | None = None,
    rationale: str = "",
    gold_answer: str | None = None,
) -> Judgment:
    """Create or replace the user's judgment of the run.

    ``choice`` may be left empty (``UNDECIDED``): ratings, a rationale or a gold answer can be
    saved before, or without, saying which answer is best. ``gold_answer=None`` keeps the gold
    answer as it is.
    """
    if not is_judgeable(run):
        raise ServiceError("Only a finished run with answers can be judged.", code="not_judgeable")
    if choice not in (*Choice.values, UNDECIDED):
        raise ServiceError("Choose a winner, a tie, or none.", field="choice")
    members = {c.member for c in final_candidates(run)}
    winner = (winner or "").strip()
    if choice == Choice.PICK:
        allowed = members | ({FUSED} if fused_text_of(run) else set())
        if winner not in allowed:
            raise ServiceError("Pick one of the answers.", field="winner")
    else:
        winner = ""
    ranking_clean = _clean_numbers(ranking, members, 1, max(len(members), 1), "rank")
    ratings_clean = _clean_numbers(ratings, members, 1, 5, "rating")
    rationale = _clean_text(rationale, field="rationale")
    judgment, _ = Judgment.objects.select_for_update().get_or_create(run=run, user=user)
    judgment.choice = choice
    judgment.winner = winner
    judgment.ranking = ranking_clean
    judgment.ratings = ratings_clean
    judgment.rationale = rationale
    _set_gold(judgment, gold_answer)
    judgment.save()
    return judgment


@transaction.atomic
def gold_answer_save(*, run: Run, user: User, text: str) -> Judgment:
    """Write (or clear, with "") the user's gold answer, leaving the rest of their judgment
    alone: no pick is needed for it."""
    if not is_judgeable(run):
        raise ServiceError("Only a finished run with answers can be judged.", code="not_judgeable")
    judgment, _ = Judgment.objects.select_for_update().get_or_create(run=run, user=user)
    _set_gold(judgment, text)
    judgment.save()
    return judgment


def tags_parse(raw: str | list[str]) -> list[str]:
    names = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    tags = []
    for name in names:
        name = name.strip().lower()
        if not name:
            continue
        if not TAG_RE.match(name):
            raise ServiceError(
                f"“{name[:40]}” is not a tag: use letters, digits, - and _.", field="tags"
            )
        if name not in tags:
            tags.append(name)
    if len(tags) > MAX_TAGS:
        raise ServiceError(f"At most {MAX_TAGS} tags on a run.", field="tags")
    return tags


@transaction.atomic
def run_tags_set(*, run: Run, user: User, names: str | list[str]) -> list[str]:
    """Make the run's tags exactly these."""
    tags = tags_parse(names)
    run.tags.exclude(name__in=tags).delete()
    have = set(run.tags.values_list("name", flat=True))
    RunTag.objects.bulk_create(
        [RunTag(run=run, name=name, created_by=user) for name in tags if name not in have]
    )
    return sorted(tags)


@transaction.atomic
def comment_create(*, run: Run, user: User, body: str, parent: Comment | None = None) -> Comment:
    body = _clean_text(body, limit=MAX_COMMENT, field="body")
    if not body:
        raise ServiceError("Write something first.", field="body")
    if parent is not None:
        if parent.run_id != run.pk:
            raise ServiceError("That comment is on another run.", field="parent")
        # Replies stay one level deep: a reply to a reply joins the same thread.
        parent = parent.parent or parent
    return Comment.objects.create(run=run, author=user, body=body, parent=parent)


@transaction.atomic
def review_flag_set(*, run: Run, user: User, flagged: bool) -> bool:
    if flagged:
        ReviewFlag.objects.get_or_create(run=run, user=user)
    else:
        ReviewFlag.objects.filter(run=run, user=user).delete()
    return flagged


@transaction.atomic
def share_link_create(
    *, run: Run, user: User, show_costs: bool = False, expires_in_days: int | None = None
) -> ShareLink:
    if not run.is_terminal:
        raise ServiceError("Share a run once it has ended.", code="not_ended")
    expires_at = None
    if expires_in_days is not None:
        if not 1 <= expires_in_days <= MAX_SHARE_DAYS:
            raise ServiceError(
                f"A link lasts from 1 to {MAX_SHARE_DAYS} days.", field="expires_in_days"
            )
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    return ShareLink.objects.create(
        run=run, created_by=user, show_costs=show_costs, expires_at=expires_at
    )


@transaction.atomic
def share_link_revoke(*, link: ShareLink, user: User) -> ShareLink:
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
    return link


# What a copy keeps, by name. An allow-list on purpose: a field added to Run or Candidate later
# (worker bookkeeping, anything naming a key) stays behind until someone decides it belongs
# in a copy. Relations are set by run_copy itself: they point into the source workspace.
RUN_COPIED = (
    "mode",
    "prompt",
    "system_prompt",
    "source",
    "status",
    "error",
    "judge_parts",
    "verdict",
    "winner",
    "fused_text",
    "total_cost",
    "cost_unpriced",
    "input_tokens",
    "output_tokens",
    "wall_ms",
    "last_seq",
    "started_at",
    "finished_at",
)
CANDIDATE_COPIED = (
    "member",
    "round",
    "position",
    "provider_kind",
    "model",
    "status",
    "text",
    "error",
    "permanent",
    "finish_reason",
    "input_tokens",
    "output_tokens",
    "tokens_estimated",
    "cost",
    "ttft_ms",
    "latency_ms",
)


def _fields(instance: Any, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(instance, name) for name in names}


@transaction.atomic
def run_copy(*, run: Run, user: User, target: Workspace) -> Run:
    """A copy of an ended run in another workspace: prompt, answers, verdict and tags.

    Not copied: provider calls (they name keys), judgments, comments and share links, which
    belong to the people of the first workspace. The copy's configuration keeps the models
    but not the credentials' labels, which are the source workspace's own.
    """
    if not run.is_terminal:
        raise ServiceError("Copy a run once it has ended.", code="not_ended")
    if target.pk == run.workspace_id:
        raise ServiceError("The run is already in that workspace.", field="workspace")
    config = dict(run.config or {})
    config["providers"] = {
        ref: {"label": "copied", "kind": info.get("kind", "")}
        for ref, info in (config.get("providers") or {}).items()
    }
    config.pop("credentials", None)
    config[COPIED_FROM] = str(run.pk)  # budgets count nothing for it: nothing was spent here
    copy = Run.objects.create(
        workspace=target,
        created_by=user,
        pool=None,
        pool_name=run.pool_name or "Copied run",
        config=config,
        **_fields(run, RUN_COPIED),
    )
    Candidate.objects.bulk_create(
        [
            Candidate(run=copy, provider="copied", **_fields(c, CANDIDATE_COPIED))
            for c in run.candidates.all()
        ]
    )
    RunTag.objects.bulk_create(
        [RunTag(run=copy, name=t.name, created_by=user) for t in run.tags.all()]
    )
    return copy
