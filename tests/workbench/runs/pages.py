"""Runs as the pages and the API show them, written straight to the database (no worker)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any

from django.db import transaction
from django.utils import timezone

from tests.workbench.runs.helpers import simulated_pool, start_run
from workbench.accounts.models import User, Workspace
from workbench.pools.models import Pool
from workbench.runs.models import Candidate, CandidateStatus, ProviderCall, Run, RunStatus

XSS_TEXT = (
    "Here is **bold** and a payload:\n\n"
    "<script>window.__pwned = 1</script>\n\n"
    '<img src=x onerror="window.__pwned = 2">\n\n'
    "[click me](javascript:window.__pwned=3)\n\n"
    '<a href="javascript:window.__pwned=4">raw link</a>\n\n'
    "```python\nprint('<b>hi</b>')\n```\n"
)


def finished_run(
    workspace: Workspace,
    user: User,
    *,
    pool: Pool | None = None,
    models: tuple[str, ...] = ("sim-fast", "sim-balanced", "sim-slow"),
    prompt: str = "Explain caching in one paragraph.",
    texts: dict[str, str] | None = None,
    winner: str = "m2",
    status: str = RunStatus.FINISHED,
    unpriced_call: bool = False,
    created_at: datetime | None = None,
) -> Run:
    """A run that ended: every candidate done, one call each plus the judge's, a verdict.

    Written in one transaction: against a live worker, the task run_create enqueues on commit
    then finds the run already ended and leaves it alone.
    """
    pool = pool or simulated_pool(workspace, user, list(models))
    with transaction.atomic():
        return _finished(pool, user, prompt, texts, winner, status, unpriced_call, created_at)


def _finished(
    pool: Pool,
    user: User,
    prompt: str,
    texts: dict[str, str] | None,
    winner: str,
    status: str,
    unpriced_call: bool,
    created_at: datetime | None,
) -> Run:
    run = start_run(pool, user, prompt=prompt)
    candidates = list(run.candidates.order_by("position"))
    total = Decimal(0)
    for i, candidate in enumerate(candidates):
        text = (texts or {}).get(candidate.member, f"Answer **{i + 1}** from {candidate.model}.")
        cost = Decimal("0.000120") * (i + 1)
        Candidate.objects.filter(pk=candidate.pk).update(
            status=CandidateStatus.DONE,
            text=text,
            input_tokens=20,
            output_tokens=40 + i,
            cost=cost,
            ttft_ms=80.0 + i,
            latency_ms=400.0 + 10 * i,
            finish_reason="stop",
        )
        _call(run, candidate.member, candidate.model, i + 1, cost)
        total += cost
    judge_cost = None if unpriced_call else Decimal("0.000050")
    _call(run, "judge", "sim-judge", len(candidates) + 1, judge_cost, phase_tokens=(300, 60))
    total += judge_cost or 0
    scores: dict[str, Any] = {c.member: 6.0 + i for i, c in enumerate(candidates)}
    verdict = {
        "winner": winner,
        "scores": scores,
        "rationale": "Answer B is the most complete.",
        "confidence": 0.8,
        "analysis": None,
        "synthesis": None,
        "passes": 1,
        "agreement": None,
        "judged": True,
    }
    Run.objects.filter(pk=run.pk).update(
        status=status,
        verdict=verdict if status == RunStatus.FINISHED else None,
        winner=winner if status == RunStatus.FINISHED else "",
        judge_parts={"judge/score": {"text": '{"winner": "B"}'}},
        total_cost=total,
        cost_unpriced=unpriced_call,
        input_tokens=20 * len(candidates) + 300,
        output_tokens=200,
        wall_ms=1234.0,
        started_at=timezone.now(),
        finished_at=timezone.now(),
        last_seq=42,
        **({"created_at": created_at} if created_at else {}),
    )
    run.refresh_from_db()
    return run


def _call(
    run: Run,
    who: str,
    model: str,
    order: int,
    cost: Decimal | None,
    phase_tokens: tuple[int, int] = (20, 40),
) -> ProviderCall:
    return ProviderCall.objects.create(
        run=run,
        call_id=f"c{order}",
        candidate=who,
        provider=run.config["providers"][next(iter(run.config["providers"]))]["label"],
        model=model,
        key_label="",
        status="ok",
        input_tokens=phase_tokens[0],
        output_tokens=phase_tokens[1],
        cost=cost,
        ttft_ms=50.0,
        latency_ms=300.0,
        attempts=1,
    )


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, {name: value or "" for name, value in attrs}))


def elements(html: str) -> list[tuple[str, dict[str, str]]]:
    """The elements a browser would build from ``html`` (escaped text makes none)."""
    parser = _Elements()
    parser.feed(html)
    return parser.elements


def script_vectors(html: str) -> list[str]:
    """Every way ``html`` could run script: script elements, handlers, script URLs."""
    found = []
    for tag, attrs in elements(html):
        if tag == "script" and "src" not in attrs and attrs.get("type") != "application/json":
            found.append("inline <script>")
        found += [f"<{tag} {name}>" for name in attrs if name.startswith("on")]
        found += [
            f"<{tag} {name}={value!r}>"
            for name, value in attrs.items()
            if name in ("href", "src", "action", "formaction")
            and value.strip().lower().startswith(("javascript:", "vbscript:", "data:text"))
        ]
    return found
