"""Curated runs out as training data: chat fine-tuning JSONL, preference pairs JSONL, CSV.

Each format is a generator of lines over ``QuerySet.iterator()``, so an export of any size
streams in constant memory. Nothing about keys or credentials is ever written: only prompts,
answer texts, model names and people's judgments.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from workbench.accounts.models import Workspace
from workbench.curation.models import Judgment
from workbench.curation.selectors import (
    JUDGEABLE,
    consensus_of,
    gold_of,
    judge_model_of,
    text_for_label,
)
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


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min), timezone.get_current_timezone())


def export_runs(workspace: Workspace, filters: ExportFilters) -> QuerySet[Run]:
    runs = Run.objects.filter(workspace=workspace, status__in=JUDGEABLE)
    if filters.pool:
        runs = runs.filter(pool_id=filters.pool)
    if filters.tag:
        runs = runs.filter(tags__name=filters.tag)
    if filters.date_from:
        runs = runs.filter(created_at__gte=_day_start(filters.date_from))
    if filters.date_to:
        runs = runs.filter(created_at__lt=_day_start(filters.date_to + timedelta(days=1)))
    if filters.curated_only:
        curated = Judgment.objects.filter(Q(choice="pick") | ~Q(gold_answer=""))
        runs = runs.filter(pk__in=curated.values("run_id"))
    return runs.order_by("created_at", "id").prefetch_related(
        Prefetch("judgments", queryset=Judgment.objects.order_by("created_at")),
        Prefetch("candidates", queryset=Candidate.objects.order_by("round", "position")),
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
    last: dict[str, Candidate] = {}
    for candidate in run.candidates.all():
        last[candidate.member] = candidate
    candidates = sorted(last.values(), key=lambda c: (c.position, c.member))
    judgments = list(run.judgments.all())
    people = consensus_of(judgments).label
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
    """One pair per other successful answer: (chosen, that answer)."""
    for item in _items(runs):
        if not item.chosen:
            continue
        for candidate in item.candidates:
            if candidate.status != CandidateStatus.DONE or not candidate.text:
                continue
            if candidate.member == item.chosen_member or candidate.text == item.chosen:
                continue
            yield _json_line(
                {"prompt": item.run.prompt, "chosen": item.chosen, "rejected": candidate.text}
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
