"""What the run page shows, built from a run's state (the websocket snapshot's shape).

The page is rendered on the server from the same state a websocket client starts from, so it
works without JavaScript and a reload mid-run shows what is streaming now; the browser then
takes over from that state (``static/js/run.js``). Nothing here writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any

import redis
from asgiref.sync import async_to_sync

from workbench.lib.markdown import render_markdown
from workbench.runs.engine_bridge import display_of, spec_dict_of
from workbench.runs.live import LiveSnapshot, LiveStore
from workbench.runs.models import TERMINAL_STATUSES, Run, RunStatus
from workbench.runs.numbers import decimal_or_none
from workbench.runs.publish import redis_client
from workbench.runs.selectors import run_state_from_db

log = logging.getLogger(__name__)

SIMULATED = "simulated"


# --- the state -------------------------------------------------------------------------------


async def _live_snapshot(run_id: str) -> LiveSnapshot | None:
    client = redis_client()
    try:
        return await LiveStore(client).snapshot(run_id)
    finally:
        await client.aclose()


def run_state_now(run: Run) -> tuple[int, dict[str, Any]]:
    """The run's state as a websocket client would get it now: live (Redis) over stored.

    An ended run's stored state is complete, so Redis is only asked about runs in flight; if
    Redis cannot answer, the stored state (at most a checkpoint behind) still makes a page.
    """
    seq, state = run_state_from_db(run)
    if run.is_terminal:
        return seq, state
    try:
        live = async_to_sync(_live_snapshot)(str(run.pk))
    except (redis.RedisError, OSError):
        log.warning("live state of run %s unavailable; showing the stored state", run.pk)
        return seq, state
    if live is None or seq > live.seq:
        return seq, state
    # The same merge the websocket consumer makes, so page and snapshot agree.
    from workbench.runs.live import merge_states

    return live.seq, merge_states(state, live)


# --- providers -------------------------------------------------------------------------------


def provider_directory(config: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Provider reference or label -> {"label", "kind"}, from the frozen configuration.

    Events name providers by reference ("cred:3") and call records by label; both resolve.
    """
    directory: dict[str, dict[str, str]] = {}
    for ref, info in display_of(config).items():
        entry = {"label": str(info.get("label") or ref), "kind": str(info.get("kind") or "")}
        directory[ref] = entry
        directory.setdefault(entry["label"], entry)
    return directory


def _provider(directory: dict[str, dict[str, str]], name: Any, kind: str = "") -> dict[str, Any]:
    entry = directory.get(str(name or ""), {})
    kind = entry.get("kind") or kind
    return {
        "label": entry.get("label") or str(name or ""),
        "kind": kind,
        "simulated": kind == SIMULATED,
    }


# --- the view model --------------------------------------------------------------------------


@dataclass
class Column:
    part: str
    member: str
    round: int
    position: int
    status: str
    provider: dict[str, Any]
    model: str
    text: str
    error: str
    input_tokens: int | None
    output_tokens: int | None
    tokens_estimated: bool
    cost: Decimal | None
    ttft_ms: float | None
    latency_ms: float | None
    finish_reason: str
    is_winner: bool = False
    score: float | None = None

    @cached_property
    def html(self) -> str:
        """The finished answer's Markdown, rendered only when a page shows it (the panels
        the live page refetches never do)."""
        return render_markdown(self.text) if self.status == "done" else ""


@dataclass
class Round:
    number: int
    label: str
    columns: list[Column]


@dataclass
class JudgePass:
    part: str
    judge: str
    phase: str
    status: str
    provider: dict[str, Any]
    model: str
    text: str
    html: str
    labels: list[tuple[str, str]]


@dataclass
class Score:
    member: str
    model: str
    score: float
    percent: float
    is_winner: bool


@dataclass
class Verdict:
    winner: str | None
    winner_model: str
    scores: list[Score]
    rationale: str
    confidence: float | None
    confidence_percent: int | None
    agreement: bool | None
    passes: int
    judged: bool
    analysis: dict[str, Any] | None
    synthesis_html: str


@dataclass
class CallRow:
    order: int
    call_id: str
    who: str
    round: int
    phase: str
    provider: dict[str, Any]
    model: str
    key_label: str
    status: str
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost: Decimal | None
    ttft_ms: float | None
    latency_ms: float | None
    attempts: int
    error: str


@dataclass
class CallTotals:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = field(default_factory=lambda: Decimal(0))
    unpriced: bool = False
    attempts: int = 0


@dataclass
class RunView:
    status: str
    status_label: str
    error: str
    mode: str
    rounds: list[Round]
    judge_passes: list[JudgePass]
    judge_status: str  # "none" (no judge), "waiting", "streaming", "done", "failed"
    judge_error: str
    judge: dict[str, Any] | None
    verdict: Verdict | None
    calls: list[CallRow]
    totals: CallTotals
    run_totals: dict[str, Any]
    estimated_cost: Decimal | None
    is_terminal: bool
    providers: dict[str, dict[str, str]]
    winner: str | None
    models_by_member: dict[str, str] = field(default_factory=dict)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _columns(
    state: dict[str, Any], directory: dict[str, dict[str, str]], positions: dict[str, int]
) -> list[Column]:
    columns = []
    for part, data in state.get("parts", {}).items():
        if data.get("kind") != "candidate":
            continue
        usage = data.get("usage") or {}
        status = str(data.get("status") or "queued")
        text = str(data.get("text") or "")
        member = str(data.get("candidate") or part.split("/")[0])
        columns.append(
            Column(
                part=part,
                member=member,
                round=_int(data.get("round")),
                position=positions.get(member, 999),
                status=status,
                provider=_provider(
                    directory, data.get("provider"), str(data.get("provider_kind") or "")
                ),
                model=str(data.get("model") or ""),
                text=text,
                error=str(data.get("error") or ""),
                input_tokens=usage.get("input_tokens") if usage else None,
                output_tokens=usage.get("output_tokens") if usage else None,
                tokens_estimated=bool(usage.get("estimated")) if usage else False,
                cost=decimal_or_none(data.get("cost")),
                ttft_ms=data.get("ttft_ms"),
                latency_ms=data.get("latency_ms"),
                finish_reason=str(data.get("finish_reason") or ""),
            )
        )
    columns.sort(key=lambda c: (c.round, c.position, c.member))
    return columns


def _round_label(number: int, mode: str) -> str:
    if mode != "debate":
        return "Answers"
    return "First answers" if number == 0 else f"Round {number} · revised after the debate"


def _verdict(
    raw: dict[str, Any] | None, models: dict[str, str], synthesis_text: str
) -> Verdict | None:
    if not raw:
        return None
    scores_raw = raw.get("scores") or {}
    top = max([float(v) for v in scores_raw.values()] + [10.0])
    winner = raw.get("winner")
    scores = sorted(
        (
            Score(
                member=str(member),
                model=models.get(str(member), ""),
                score=float(value),
                percent=max(0.0, min(100.0, 100 * float(value) / top)),
                is_winner=member == winner,
            )
            for member, value in scores_raw.items()
        ),
        key=lambda s: -s.score,
    )
    confidence = raw.get("confidence")
    synthesis = raw.get("synthesis") or synthesis_text
    return Verdict(
        winner=winner,
        winner_model=models.get(str(winner), "") if winner else "",
        scores=scores,
        rationale=str(raw.get("rationale") or ""),
        confidence=float(confidence) if confidence is not None else None,
        confidence_percent=round(float(confidence) * 100) if confidence is not None else None,
        agreement=raw.get("agreement"),
        passes=_int(raw.get("passes")) or 1,
        judged=raw.get("judged", True) is not False,
        analysis=raw.get("analysis") or None,
        synthesis_html=render_markdown(str(synthesis)) if synthesis else "",
    )


def _calls(
    state: dict[str, Any], directory: dict[str, dict[str, str]]
) -> tuple[list[CallRow], CallTotals]:
    rows: list[CallRow] = []
    totals = CallTotals()
    for index, call in enumerate(state.get("calls", []), start=1):
        usage = call.get("usage") or {}
        cost = decimal_or_none(call.get("cost"))
        row = CallRow(
            order=_int(call.get("order")) or index,
            call_id=str(call.get("call_id") or ""),
            who=str(call.get("candidate") or ""),
            round=_int(call.get("round")),
            phase=str(call.get("phase") or ""),
            provider=_provider(directory, call.get("provider")),
            model=str(call.get("model") or ""),
            key_label=str(call.get("key_label") or ""),
            status=str(call.get("status") or ""),
            input_tokens=_int(usage.get("input_tokens")),
            output_tokens=_int(usage.get("output_tokens")),
            tokens_estimated=bool(usage.get("estimated")),
            cost=cost,
            ttft_ms=call.get("ttft_ms"),
            latency_ms=call.get("latency_ms"),
            attempts=_int(call.get("attempts")) or 1,
            error=str(call.get("error") or ""),
        )
        rows.append(row)
        totals.calls += 1
        totals.input_tokens += row.input_tokens
        totals.output_tokens += row.output_tokens
        totals.attempts += row.attempts
        if cost is None:
            # A call that sent nothing (skipped, cancelled before a token) costs nothing;
            # only a call that used tokens without a price makes the total incomplete.
            if row.input_tokens or row.output_tokens:
                totals.unpriced = True
        else:
            totals.cost += cost
    rows.sort(key=lambda r: r.order)
    return rows, totals


STATUS_LABELS = dict(RunStatus.choices)


def run_view(run: Run, state: dict[str, Any]) -> RunView:
    config = run.config or {}
    spec = spec_dict_of(config)
    directory = provider_directory(config)
    positions = {str(m.get("id")): i for i, m in enumerate(spec.get("members", []))}
    run_state = state.get("run", {})
    mode = str(run_state.get("mode") or run.mode)
    status = str(run_state.get("status") or run.status)

    columns = _columns(state, directory, positions)
    # The model that answered last for each member (a fallback model, the last debate round).
    models = {str(m.get("id")): str(m.get("model") or "") for m in spec.get("members", [])}
    for column in columns:
        if column.model:
            models[column.member] = column.model

    raw_verdict = run_state.get("verdict")
    judge_parts = []
    synthesis_text = ""
    for part, data in state.get("parts", {}).items():
        if data.get("kind") != "judge":
            continue
        labels = data.get("labels") or {}
        text = str(data.get("text") or "")
        phase = str(data.get("phase") or part.partition("/")[2])
        if phase == "synthesis":
            synthesis_text = text
        judge_parts.append(
            JudgePass(
                part=part,
                judge=str(data.get("judge") or part.partition("/")[0]),
                phase=phase,
                status=str(data.get("status") or "done"),
                provider=_provider(directory, data.get("provider")),
                model=str(data.get("model") or ""),
                text=text,
                html="",
                labels=[(str(label), str(member)) for label, member in labels.items()],
            )
        )
    verdict = _verdict(raw_verdict, models, synthesis_text)
    winner = (verdict.winner if verdict else None) or run_state.get("winner") or None
    last_round = {c.member: c.round for c in columns}  # sorted by round: the last one wins
    for column in columns:
        # The judge saw each member's last answer: only that column won, only it has a score.
        if column.round != last_round[column.member]:
            continue
        column.is_winner = bool(winner) and column.member == winner
        if verdict:
            column.score = next(
                (s.score for s in verdict.scores if s.member == column.member), None
            )

    rounds: dict[int, list[Column]] = {}
    for column in columns:
        rounds.setdefault(column.round, []).append(column)

    judge_spec = spec.get("judge") or None
    judge = None
    if judge_spec:
        judge = {
            "provider": _provider(directory, judge_spec.get("provider")),
            "model": str(judge_spec.get("model") or ""),
        }
    judge_error = str(run_state.get("judge_error") or "")
    if judge is None or len(spec.get("members", [])) < 2:
        judge_status = "none" if verdict is None else "done"
    elif verdict is not None:
        judge_status = "done"
    elif judge_error or run_state.get("judge_status") == "failed":
        judge_status = "failed"
    elif status == RunStatus.FINISHED_WITHOUT_VERDICT:
        judge_status = "failed"
        judge_error = judge_error or str(run_state.get("error") or run.error or "")
    elif any(p.status == "streaming" for p in judge_parts):
        judge_status = "streaming"
    elif status in (RunStatus.FAILED, RunStatus.CANCELLED):
        judge_status = "skipped"
    else:
        judge_status = "waiting"

    if judge_status in ("done", "failed", "skipped") or status in TERMINAL_STATUSES:
        # A pass still marked streaming once the judge or the run is over was cut short or
        # finished without its own mark: say how it ended.
        for judge_pass in judge_parts:
            if judge_pass.status == "streaming":
                judge_pass.status = "failed" if judge_status == "failed" else "done"

    calls, totals = _calls(state, directory)
    return RunView(
        status=status,
        status_label=STATUS_LABELS.get(status, status.replace("_", " ").capitalize()),
        error=str(run_state.get("error") or ""),
        mode=mode,
        rounds=[
            Round(number=n, label=_round_label(n, mode), columns=cols)
            for n, cols in sorted(rounds.items())
        ],
        judge_passes=judge_parts,
        judge_status=judge_status,
        judge_error=judge_error,
        judge=judge,
        verdict=verdict,
        calls=calls,
        totals=totals,
        run_totals=run_state.get("totals") or {},
        estimated_cost=decimal_or_none(run_state.get("estimated_cost")),
        is_terminal=status in TERMINAL_STATUSES,
        providers=directory,
        winner=winner,
        models_by_member=models,
    )


def part_text(state: dict[str, Any], part: str) -> tuple[str, str] | None:
    """(status, text) of one part of the state, or None when the run has no such part."""
    data = state.get("parts", {}).get(part)
    if data is None:
        return None
    return str(data.get("status") or ""), str(data.get("text") or "")
