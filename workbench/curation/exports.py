"""Curated runs out as training data: chat fine-tuning JSONL, preference pairs JSONL, CSV.

Each format is a generator of lines over ``QuerySet.iterator()``, so an export of any size
streams in constant memory. Nothing about keys or credentials is ever written: only prompts,
answer texts, model names and people's judgments.

The answer a run contributes ("chosen") is its gold answer when anyone wrote one — the one
whose text changed last, when several people did (``selectors.gold_of`` says why) — and
otherwise the answer most people picked (their consensus; a split, a tie or "none is good"
gives no answer and the run is skipped in the JSONL formats).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from workbench.accounts.models import Workspace
from workbench.curation.models import DECIDED, Choice, Judgment
from workbench.curation.selectors import (
    JUDGEABLE,
    consensus_of,
    final_candidates,
    gold_of,
    judge_model_of,
    text_for_label,
)
from workbench.runs.history import created_between
from workbench.runs.models import Candidate, CandidateStatus, Run

FORMATS = {
    "chat": ("jsonl", "application/x-ndjson"),
    "pairs": ("jsonl", "application/x-ndjson"),
    "csv": ("csv", "text/csv"),
}
CSV_COLUMNS = [
    "run_id",
    "created_at",
    "pool",
    "mode",
    "system_prompt",
    "prompt",
    "judge_model",
    "judge_winner_model",
    "people_choice",
    "people_winner_model",
    "judgments",
    "gold_answer",
    "chosen",
    "tags",
]


@dataclass(frozen=True)
class ExportFilters:
    pool: int | None = None
    tag: str = ""
    date_from: date | None = None
    date_to: date | None = None
    curated_only: bool = True  # only runs with a human pick or a gold answer


def export_runs(workspace: Workspace, filters: ExportFilters) -> QuerySet[Run]:
    runs = Run.objects.filter(workspace=workspace, status__in=JUDGEABLE)
    if filters.pool:
        runs = runs.filter(pool_id=filters.pool)
    if filters.tag:
        runs = runs.filter(tags__name=filters.tag)
    runs = created_between(runs, filters.date_from, filters.date_to)
    if filters.curated_only:
        curated = Judgment.objects.filter(Q(choice=Choice.PICK) | ~Q(gold_answer=""))
        runs = runs.filter(pk__in=curated.values("run_id"))
    return runs.order_by("created_at", "id").prefetch_related(
        Prefetch("judgments", queryset=Judgment.objects.order_by("created_at")),
        Prefetch("candidates", queryset=Candidate.objects.all()),
        "tags",
    )


@dataclass(frozen=True)
class Curated:
    run: Run
    candidates: list[Candidate]
    judgments: list[Judgment]
    people: str | None  # consensus label
    gold: str
    chosen: str  # gold, else the people's pick, else ""
    chosen_member: str | None

    def model_of(self, member: str | None) -> str:
        found = next((c for c in self.candidates if c.member == member), None)
        return found.model if found else ""


def _curated(run: Run) -> Curated:
    candidates = final_candidates(run)
    judgments = list(run.judgments.all())
    # Gold answers come from anyone (gold_of); the people's pick only from decided judgments.
    people = consensus_of([j for j in judgments if j.choice in DECIDED]).label
    gold = gold_of(judgments)
    picked = text_for_label(run, people, candidates)
    member = people if any(c.member == people for c in candidates) else None
    return Curated(run, candidates, judgments, people, gold, gold or picked, member)


def _items(runs: QuerySet[Run]) -> Iterator[Curated]:
    for run in runs.iterator(chunk_size=200):
        yield _curated(run)


def _json_line(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False) + "\n"


def chat_lines(runs: QuerySet[Run]) -> Iterator[str]:
    for item in _items(runs):
        if not item.chosen:
            continue
        messages = []
        if item.run.system_prompt:
            messages.append({"role": "system", "content": item.run.system_prompt})
        messages.append({"role": "user", "content": item.run.prompt})
        messages.append({"role": "assistant", "content": item.chosen})
        yield _json_line({"messages": messages})


def pair_lines(runs: QuerySet[Run]) -> Iterator[str]:
    """One pair per other successful answer: (chosen, that answer).

    ``prompt``, ``chosen`` and ``rejected`` as DPO trainers read them, and ``system``, the
    run's system prompt ("" when it had none): on every line, so that loaders which infer one
    schema for the whole file (``datasets``, pandas) see the same columns throughout.
    """
    for item in _items(runs):
        if not item.chosen:
            continue
        for candidate in item.candidates:
            if candidate.status != CandidateStatus.DONE or not candidate.text:
                continue
            if candidate.member == item.chosen_member or candidate.text == item.chosen:
                continue
            yield _json_line(
                {
                    "system": item.run.system_prompt,
                    "prompt": item.run.prompt,
                    "chosen": item.chosen,
                    "rejected": candidate.text,
                }
            )


def csv_lines(runs: QuerySet[Run]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        value = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate(0)
        return value

    writer.writerow(CSV_COLUMNS)
    yield flush()
    for item in _items(runs):
        run = item.run
        writer.writerow(
            [
                str(run.pk),
                run.created_at.isoformat(),
                run.pool_name,
                run.mode,
                run.system_prompt,
                run.prompt,
                judge_model_of(run),
                item.model_of(run.winner) if run.winner else "",
                item.people or "",
                item.model_of(item.chosen_member),
                len(item.judgments),
                item.gold,
                item.chosen,
                " ".join(t.name for t in run.tags.all()),
            ]
        )
        yield flush()


def export_lines(runs: QuerySet[Run], kind: str) -> Iterator[str]:
    return {"chat": chat_lines, "pairs": pair_lines, "csv": csv_lines}[kind](runs)


def export_response(runs: QuerySet[Run], kind: str, slug: str) -> StreamingHttpResponse:
    """The export as a streamed download (the export page and the API both answer this)."""
    extension, content_type = FORMATS[kind]
    response = StreamingHttpResponse(
        export_lines(runs, kind), content_type=f"{content_type}; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{kind}-{stamp}.{extension}"'
    return response
