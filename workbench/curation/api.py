"""REST routes for curation: judgments, tags, gold answers, comments and share links of a run;
agreement, leaderboard and exports of a workspace.

Same rules as the pages: outsiders get 404, viewers read and comment (403 on every other
write), members and up judge, tag, write gold answers and share. Thin: the rules are in
``services``, the reads in ``selectors`` and ``analysis``. Model names are not hidden here in
blind mode: blind mode is about what a person reads on a run page (``curation.blind``).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from django.http import HttpRequest, StreamingHttpResponse
from django.urls import reverse
from ninja import Field, Query, Router, Schema, Status
from pydantic import AliasChoices

from workbench.accounts.models import Role, Workspace
from workbench.api.access import api_membership, api_user
from workbench.curation import analysis, exports, selectors, services
from workbench.curation.models import Comment, Judgment, ShareLink
from workbench.curation.services import MAX_COMMENT, MAX_SHARE_DAYS, MAX_TAGS, MAX_TEXT
from workbench.lib.errors import ServiceError
from workbench.runs.launch import pool_by_ref
from workbench.runs.models import Run
from workbench.runs.selectors import run_in_workspace

router = Router(tags=["curation"])

# Ids in bodies are bounded so a huge number is a 422, not a database overflow.
MAX_ID = 2**53
TAG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"


# --- schemas -------------------------------------------------------------------------------------


class JudgmentIn(Schema):
    choice: Literal["pick", "tie", "none", ""] = Field(
        "", description='"pick" (with winner), "tie", "none" (none is good) or "" (undecided).'
    )
    winner: str = Field("", max_length=20, description='A member id ("m1" …) or "fused".')
    ranking: dict[str, int] = Field(default_factory=dict, description="member -> rank, 1 = best")
    ratings: dict[str, int] = Field(default_factory=dict, description="member -> 1..5")
    rationale: str = Field("", max_length=MAX_TEXT)
    gold_answer: str | None = Field(
        None, max_length=MAX_TEXT, description="Omit (or null) to keep the gold answer as it is."
    )


class JudgmentOut(Schema):
    user: str
    choice: str
    winner: str | None
    winner_model: str | None
    ranking: dict[str, int]
    ratings: dict[str, int]
    rationale: str
    gold_answer: str
    created_at: datetime
    updated_at: datetime


class ConsensusOut(Schema):
    label: str | None = Field(description='A member id, "fused", "tie", "none"; null if split.')
    model: str | None
    count: int
    total: int
    split: bool
    counts: dict[str, int]


class JudgmentsOut(Schema):
    consensus: ConsensusOut
    judge_winner: str | None
    judgments: list[JudgmentOut]


class TagsIn(Schema):
    tags: list[str] = Field(max_length=MAX_TAGS)


class TagsOut(Schema):
    tags: list[str]


class GoldIn(Schema):
    text: str = Field(max_length=MAX_TEXT, description='The gold answer; "" clears yours.')


class GoldOut(Schema):
    user: str
    text: str
    written_at: datetime
    exported: bool = Field(description="The gold answer exports use: the most recently written.")


class GoldListOut(Schema):
    gold: str = Field(description="The run's gold answer as exports use it ('' if none).")
    answers: list[GoldOut]


class CommentIn(Schema):
    body: str = Field(max_length=MAX_COMMENT)
    parent: int | None = Field(None, ge=1, le=MAX_ID, description="Reply to this comment.")


class ReplyOut(Schema):
    id: int
    author: str | None
    body: str
    created_at: datetime


class ThreadOut(ReplyOut):
    replies: list[ReplyOut]


class ShareLinkIn(Schema):
    show_costs: bool = False
    expires_in_days: int | None = Field(None, ge=1, le=MAX_SHARE_DAYS)


class ShareLinkRevokeIn(Schema):
    id: int = Field(ge=1, le=MAX_ID)


class ShareLinkOut(Schema):
    id: int
    url: str
    live: bool
    show_costs: bool
    expires_at: datetime | None
    revoked_at: datetime | None
    created_by: str | None
    created_at: datetime


class AgreementStatsOut(Schema):
    agreed: int
    total: int
    rate: float | None
    low: float = Field(description="95% Wilson interval, low end.")
    high: float
    kappa: float | None = Field(description="Cohen's kappa; null where it is undefined.")


class AgreementRowOut(AgreementStatsOut):
    name: str


class AgreementOut(Schema):
    overall: AgreementStatsOut
    by_judge: list[AgreementRowOut]
    by_pool: list[AgreementRowOut]
    excluded: int = Field(description="Judged runs without a single people's winner to compare.")


class StandingOut(Schema):
    # From a stats.Standing (its "name") and from itself, when ninja checks the response.
    model: str = Field(validation_alias=AliasChoices("model", "name"))
    score: float = Field(description="Bradley-Terry strength; 1 is an average model.")
    low: float
    high: float
    wins: float
    losses: float
    ties: float
    win_rate: float | None = Field(description="Pairwise: wins (+ half the ties) / comparisons.")
    runs_won: int
    runs_judged: int
    answer_win_rate: float | None = Field(
        description="Share of the judged runs it answered in where people chose its answer."
    )


class LeaderboardOut(Schema):
    tag: str
    standings: list[StandingOut]


class ExportQuery(Schema):
    format: Literal["chat", "pairs", "csv"] = "chat"
    pool: str | None = Field(None, max_length=60, description="A pool's slug or id.")
    tag: str | None = Field(None, pattern=TAG_PATTERN)
    date_from: date | None = None
    date_to: date | None = None
    curated_only: bool = Field(True, description="Only runs with a human pick or a gold answer.")


# --- access --------------------------------------------------------------------------------------


def _run_for(request: HttpRequest, ws: str, run_id: uuid.UUID, min_role: str) -> Run:
    """The run: 404 for outsiders and unknown ids, 403 when the role is too low."""
    membership = api_membership(request, ws, min_role)
    return run_in_workspace(membership.workspace, run_id)


# --- building responses --------------------------------------------------------------------------


def _models(run: Run) -> dict[str, str]:
    return {c.member: c.model for c in selectors.final_candidates(run)}


def _judgment_out(judgment: Judgment, models: dict[str, str]) -> JudgmentOut:
    return JudgmentOut(
        user=judgment.user.username,
        choice=judgment.choice,
        winner=judgment.winner or None,
        winner_model=models.get(judgment.winner),
        ranking=judgment.ranking or {},
        ratings=judgment.ratings or {},
        rationale=judgment.rationale,
        gold_answer=judgment.gold_answer,
        created_at=judgment.created_at,
        updated_at=judgment.updated_at,
    )


def _thread_out(comment: Comment, replies: list[Comment]) -> ThreadOut:
    return ThreadOut(
        **_reply_out(comment).model_dump(), replies=[_reply_out(reply) for reply in replies]
    )


def _reply_out(comment: Comment) -> ReplyOut:
    return ReplyOut(
        id=comment.pk,
        author=comment.author.username if comment.author else None,
        body=comment.body,
        created_at=comment.created_at,
    )


def _link_out(request: HttpRequest, link: ShareLink) -> ShareLinkOut:
    return ShareLinkOut(
        id=link.pk,
        url=request.build_absolute_uri(reverse("curation:share", kwargs={"token": link.token})),
        live=link.is_live,
        show_costs=link.show_costs,
        expires_at=link.expires_at,
        revoked_at=link.revoked_at,
        created_by=link.created_by.username if link.created_by else None,
        created_at=link.created_at,
    )


def _rows_out(rows: list[analysis.AgreementRow]) -> list[AgreementRowOut]:
    return [
        AgreementRowOut(name=r.name, **AgreementStatsOut.model_validate(r.stats).model_dump())
        for r in rows
    ]


# --- judgments -----------------------------------------------------------------------------------


@router.get("/workspaces/{ws}/runs/{run_id}/judgments", response=JudgmentsOut)
def list_judgments(request: HttpRequest, ws: str, run_id: uuid.UUID) -> JudgmentsOut:
    """Everyone's judgment of the run, and the people's consensus beside the judge's winner."""
    run = _run_for(request, ws, run_id, Role.VIEWER)
    models = _models(run)
    judgments = list(selectors.judgments_of(run))
    consensus = selectors.consensus_of(judgments)
    return JudgmentsOut(
        consensus=ConsensusOut(
            label=consensus.label,
            model=models.get(consensus.label or ""),
            count=consensus.count,
            total=consensus.total,
            split=consensus.split,
            counts=consensus.counts,
        ),
        judge_winner=run.winner or None,
        judgments=[_judgment_out(j, models) for j in judgments],
    )


@router.get("/workspaces/{ws}/runs/{run_id}/judgments/mine", response=JudgmentOut | None)
def read_my_judgment(request: HttpRequest, ws: str, run_id: uuid.UUID) -> JudgmentOut | None:
    """Your judgment of the run, or null before you made one."""
    run = _run_for(request, ws, run_id, Role.VIEWER)
    judgment = selectors.judgment_of(run, api_user(request))
    return None if judgment is None else _judgment_out(judgment, _models(run))


@router.put("/workspaces/{ws}/runs/{run_id}/judgments/mine", response=JudgmentOut)
def save_my_judgment(
    request: HttpRequest, ws: str, run_id: uuid.UUID, payload: JudgmentIn
) -> JudgmentOut:
    """Create or replace your judgment: pick (or tie, or none), ranks, ratings, rationale."""
    run = _run_for(request, ws, run_id, Role.MEMBER)
    judgment = services.judgment_save(run=run, user=api_user(request), **payload.model_dump())
    return _judgment_out(judgment, _models(run))


# --- tags ----------------------------------------------------------------------------------------


@router.get("/workspaces/{ws}/runs/{run_id}/tags", response=TagsOut)
def list_tags(request: HttpRequest, ws: str, run_id: uuid.UUID) -> TagsOut:
    return TagsOut(tags=selectors.tags_of(_run_for(request, ws, run_id, Role.VIEWER)))


@router.put("/workspaces/{ws}/runs/{run_id}/tags", response=TagsOut)
def set_tags(request: HttpRequest, ws: str, run_id: uuid.UUID, payload: TagsIn) -> TagsOut:
    """Make the run's tags exactly these (lowercase letters, digits, - and _)."""
    run = _run_for(request, ws, run_id, Role.MEMBER)
    return TagsOut(tags=services.run_tags_set(run=run, user=api_user(request), names=payload.tags))


# --- gold answers --------------------------------------------------------------------------------


def _gold_list(run: Run) -> GoldListOut:
    golds = selectors.golds_of(list(selectors.judgments_of(run)))
    return GoldListOut(
        gold=golds[0].gold_answer if golds else "",
        answers=[
            GoldOut(
                user=j.user.username,
                text=j.gold_answer,
                written_at=j.gold_updated_at or j.updated_at,
                exported=i == 0,
            )
            for i, j in enumerate(golds)
        ],
    )


@router.get("/workspaces/{ws}/runs/{run_id}/gold-answers", response=GoldListOut)
def list_gold_answers(request: HttpRequest, ws: str, run_id: uuid.UUID) -> GoldListOut:
    """Everyone's gold answer (who wrote what), newest first; the first is the one exported."""
    return _gold_list(_run_for(request, ws, run_id, Role.VIEWER))


@router.put("/workspaces/{ws}/runs/{run_id}/gold-answers/mine", response=GoldListOut)
def save_my_gold_answer(
    request: HttpRequest, ws: str, run_id: uuid.UUID, payload: GoldIn
) -> GoldListOut:
    """Write your gold answer; no pick needed, the rest of your judgment is left as it is."""
    run = _run_for(request, ws, run_id, Role.MEMBER)
    services.gold_answer_save(run=run, user=api_user(request), text=payload.text)
    return _gold_list(run)


# --- comments ------------------------------------------------------------------------------------


@router.get("/workspaces/{ws}/runs/{run_id}/comments", response=list[ThreadOut])
def list_comments(request: HttpRequest, ws: str, run_id: uuid.UUID) -> list[ThreadOut]:
    """The discussion: top comments, oldest first, each with its replies."""
    run = _run_for(request, ws, run_id, Role.VIEWER)
    return [_thread_out(t.comment, t.replies) for t in selectors.comment_threads(run)]


@router.post("/workspaces/{ws}/runs/{run_id}/comments", response={201: ReplyOut})
def create_comment(
    request: HttpRequest, ws: str, run_id: uuid.UUID, payload: CommentIn
) -> Status[ReplyOut]:
    """Comment, or reply (``parent``): a reply to a reply joins the same thread."""
    run = _run_for(request, ws, run_id, Role.VIEWER)
    parent = selectors.comment_in_run(run, payload.parent) if payload.parent else None
    comment = services.comment_create(
        run=run, user=api_user(request), body=payload.body, parent=parent
    )
    return Status(201, _reply_out(comment))


# --- share links ---------------------------------------------------------------------------------


@router.get("/workspaces/{ws}/runs/{run_id}/share-links", response=list[ShareLinkOut])
def list_share_links(request: HttpRequest, ws: str, run_id: uuid.UUID) -> list[ShareLinkOut]:
    """The run's share links, live and dead; their URLs are secrets, so members only."""
    run = _run_for(request, ws, run_id, Role.MEMBER)
    return [_link_out(request, link) for link in selectors.share_links_of(run)]


@router.post("/workspaces/{ws}/runs/{run_id}/share-links", response={201: ShareLinkOut})
def create_share_link(
    request: HttpRequest, ws: str, run_id: uuid.UUID, payload: ShareLinkIn
) -> Status[ShareLinkOut]:
    """A read-only link to the run for anyone holding it, optionally expiring, with or
    without costs."""
    run = _run_for(request, ws, run_id, Role.MEMBER)
    link = services.share_link_create(
        run=run,
        user=api_user(request),
        show_costs=payload.show_costs,
        expires_in_days=payload.expires_in_days,
    )
    return Status(201, _link_out(request, link))


@router.post("/workspaces/{ws}/runs/{run_id}/share-links/revoke", response=ShareLinkOut)
def revoke_share_link(
    request: HttpRequest, ws: str, run_id: uuid.UUID, payload: ShareLinkRevokeIn
) -> ShareLinkOut:
    """Revoke one link of the run (by its id): it answers 404 from now on."""
    run = _run_for(request, ws, run_id, Role.MEMBER)
    link = selectors.share_link_in_run(run, payload.id)
    return _link_out(request, services.share_link_revoke(link=link, user=api_user(request)))


# --- the workspace -------------------------------------------------------------------------------


def _workspace_for(request: HttpRequest, ws: str) -> Workspace:
    return api_membership(request, ws).workspace


@router.get("/workspaces/{ws}/curation/agreement", response=AgreementOut)
def read_agreement(request: HttpRequest, ws: str) -> AgreementOut:
    """How often the judge's winner is the people's, per judge model and per pool."""
    reliability = analysis.judge_agreement(_workspace_for(request, ws))
    return AgreementOut(
        overall=AgreementStatsOut.model_validate(reliability.overall),
        by_judge=_rows_out(reliability.by_judge),
        by_pool=_rows_out(reliability.by_pool),
        excluded=reliability.excluded,
    )


@router.get("/workspaces/{ws}/curation/leaderboard", response=LeaderboardOut)
def read_leaderboard(
    request: HttpRequest, ws: str, tag: str = Query("", pattern=r"^$|" + TAG_PATTERN)
) -> LeaderboardOut:
    """Models by people's preferences (optionally on runs with one tag)."""
    standings = analysis.leaderboard_of(_workspace_for(request, ws), tag=tag)
    return LeaderboardOut(tag=tag, standings=[StandingOut.model_validate(s) for s in standings])


@router.get(
    "/workspaces/{ws}/curation/export",
    response={200: None},
    openapi_extra={
        "responses": {
            200: {
                "description": "The export, streamed: JSONL (chat, pairs) or CSV.",
                "content": {
                    "application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}},
                },
            }
        }
    },
)
def export(request: HttpRequest, ws: str, filters: Query[ExportQuery]) -> StreamingHttpResponse:
    """Curated runs as training data, with the filters of the export page, streamed."""
    workspace = _workspace_for(request, ws)
    pool_id = None
    if filters.pool:
        ref = filters.pool.strip()
        too_big = ref.isdigit() and int(ref) > MAX_ID  # no such id; the database would overflow
        pool = None if too_big else pool_by_ref(api_user(request), workspace, ref)
        if pool is None:
            raise ServiceError(f"No pool {filters.pool!r} here.", field="pool", code="unknown_pool")
        pool_id = pool.pk
    runs = exports.export_runs(
        workspace,
        exports.ExportFilters(
            pool=pool_id,
            tag=filters.tag or "",
            date_from=filters.date_from,
            date_to=filters.date_to,
            curated_only=filters.curated_only,
        ),
    )
    return exports.export_response(runs, filters.format, workspace.slug)
