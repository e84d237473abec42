"""Reads about runs, always scoped to what a user may see."""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from workbench.accounts.models import User, Workspace
from workbench.runs.models import Candidate, ProviderCall, Run
from workbench.runs.numbers import money_text


def runs_of_workspace(workspace: Workspace) -> QuerySet[Run]:
    return Run.objects.filter(workspace=workspace).select_related("created_by", "pool")


def run_for_user(user: User, run_id: str | uuid.UUID) -> Run | None:
    """The run if the user is a member of its workspace, else None (never says it exists)."""
    if not user.is_authenticated:
        return None
    try:
        return Run.objects.select_related("workspace").get(
            pk=run_id, workspace__memberships__user=user
        )
    except (Run.DoesNotExist, ValueError, TypeError):
        return None


def run_in_workspace(workspace: Workspace, run_id: str | uuid.UUID) -> Run:
    try:
        return Run.objects.select_related("created_by", "pool").get(pk=run_id, workspace=workspace)
    except (Run.DoesNotExist, ValueError):
        raise Http404 from None


def candidates_of(run: Run) -> QuerySet[Candidate]:
    return run.candidates.order_by("round", "position", "member")


def calls_of(run: Run) -> QuerySet[ProviderCall]:
    return run.calls.order_by("created_at", "id")


def candidate_state(candidate: Candidate) -> dict[str, Any]:
    return {
        "kind": "candidate",
        "candidate": candidate.member,
        "round": candidate.round,
        "status": candidate.status,
        "provider": candidate.provider,
        "provider_kind": candidate.provider_kind,
        "model": candidate.model,
        "text": candidate.text,
        "error": candidate.error or None,
        "permanent": candidate.permanent,
        "finish_reason": candidate.finish_reason or None,
        "usage": {
            "input_tokens": candidate.input_tokens,
            "output_tokens": candidate.output_tokens,
            "estimated": candidate.tokens_estimated,
        },
        "cost": money_text(candidate.cost),
        "ttft_ms": candidate.ttft_ms,
        "latency_ms": candidate.latency_ms,
    }


def call_state(call: ProviderCall, order: int) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "candidate": call.candidate,
        "round": call.round,
        "phase": call.phase or None,
        "provider": call.provider,
        "model": call.model,
        "key_label": call.key_label or None,
        "status": call.status,
        "usage": {
            "input_tokens": call.input_tokens,
            "output_tokens": call.output_tokens,
            "estimated": call.tokens_estimated,
        },
        "cost": money_text(call.cost),
        "ttft_ms": call.ttft_ms,
        "latency_ms": call.latency_ms,
        "attempts": call.attempts,
        "error": call.error or None,
        "order": order,
    }


def run_state_from_db(run: Run) -> tuple[int, dict[str, Any]]:
    """The run's state as stored: what a client gets when there is no live state in Redis."""
    parts: dict[str, dict[str, Any]] = {
        f"{c.member}/{c.round}": candidate_state(c) for c in candidates_of(run)
    }
    for part, data in (run.judge_parts or {}).items():
        judge, _, phase = part.partition("/")
        parts[part] = {"kind": "judge", "judge": judge, "phase": phase, "status": "done", **data}
    calls = [call_state(call, i) for i, call in enumerate(calls_of(run), start=1)]
    state = {
        "run": {
            "status": run.status,
            "mode": run.mode,
            "error": run.error or None,
            "verdict": run.verdict,
            "winner": run.winner or None,
            "estimated_cost": money_text(run.estimated_cost),
            "totals": {
                "input_tokens": run.input_tokens,
                "output_tokens": run.output_tokens,
                "cost": money_text(run.total_cost),
                "unpriced": run.cost_unpriced,
                "wall_ms": run.wall_ms,
            },
        },
        "parts": parts,
        "calls": calls,
    }
    return run.last_seq, state
