"""The typed events of a run: the websocket protocol of DESIGN.md, plus ``call.recorded``.

Every event carries ``seq`` (per run, strictly increasing), ``run`` (the run id) and a
class-level ``type``. ``to_dict()`` gives a JSON-safe dict (``Decimal`` as a string).
Candidates are named by member id ("m1"); ``round`` is 0 for first answers and 1..r for
debate revisions. Judge passes are named "judge", "judge#2"; ``phase`` says what a pass
does ("score", "analysis", "synthesis").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from fusion.types import CallRecord, Usage


def jsonable(value: Any) -> Any:
    """Convert dataclasses, Decimals, tuples and mappings into JSON-safe values."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Decimal):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v) for v in value]
    raise TypeError(f"not JSON-safe: {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class Event:
    type: ClassVar[str] = ""

    seq: int
    run: str

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "run": self.run, "type": self.type}
        for f in dataclasses.fields(self):
            if f.name not in out:
                out[f.name] = jsonable(getattr(self, f.name))
        return out


@dataclass(frozen=True, slots=True)
class RunSnapshot(Event):
    """Full state covering every event up to ``seq``; built by the workbench, not the engine."""

    type: ClassVar[str] = "run.snapshot"
    state: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    type: ClassVar[str] = "run.started"
    mode: str
    members: tuple[Mapping[str, Any], ...]  # {"id", "provider", "model"}
    quorum: int | None
    deadline_s: float | None
    estimated_cost: Decimal | None  # None: some model is unpriced
    unpriced_models: tuple[str, ...]
    resumed: tuple[str, ...] = ()  # candidate keys taken from an earlier attempt


@dataclass(frozen=True, slots=True)
class CandidateStarted(Event):
    type: ClassVar[str] = "candidate.started"
    candidate: str
    round: int
    provider: str
    model: str


@dataclass(frozen=True, slots=True)
class CandidateDelta(Event):
    type: ClassVar[str] = "candidate.delta"
    candidate: str
    round: int
    text: str

    def to_dict(self) -> dict[str, Any]:
        # The hot path: skip the generic field walk.
        return {
            "seq": self.seq,
            "run": self.run,
            "type": self.type,
            "candidate": self.candidate,
            "round": self.round,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class CandidateRetrying(Event):
    """A call failed before its first token and will be tried again (an addition to DESIGN.md):
    after ``delay_s``, with ``model`` (a fallback model when the previous one gave up)."""

    type: ClassVar[str] = "candidate.retrying"
    candidate: str
    round: int
    error: str
    attempt: int
    delay_s: float
    model: str


@dataclass(frozen=True, slots=True)
class CandidateFinished(Event):
    type: ClassVar[str] = "candidate.finished"
    candidate: str
    round: int
    model: str  # the model that answered (a fallback model when the first one failed)
    text: str  # the whole answer once, so the sink can store it without rebuilding it
    usage: Usage
    cost: Decimal | None
    latency_ms: float
    ttft_ms: float | None
    finish_reason: str


@dataclass(frozen=True, slots=True)
class CandidateFailed(Event):
    """A candidate that will not finish: ``status`` is failed, cancelled or skipped."""

    type: ClassVar[str] = "candidate.failed"
    candidate: str
    round: int
    error: str
    permanent: bool
    status: str = "failed"
    text: str = ""  # what had streamed before the failure, kept, never spliced


@dataclass(frozen=True, slots=True)
class JudgeStarted(Event):
    type: ClassVar[str] = "judge.started"
    judge: str
    phase: str
    provider: str
    model: str
    labels: Mapping[str, str]  # "A" -> candidate id, so the UI can show what the judge saw


@dataclass(frozen=True, slots=True)
class JudgeDelta(Event):
    type: ClassVar[str] = "judge.delta"
    judge: str
    phase: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "run": self.run,
            "type": self.type,
            "judge": self.judge,
            "phase": self.phase,
            "text": self.text,
        }


@dataclass(frozen=True, slots=True)
class JudgeFinished(Event):
    type: ClassVar[str] = "judge.finished"
    verdict: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class JudgeFailed(Event):
    """The judge could not give a verdict; the candidates stand (an addition to DESIGN.md)."""

    type: ClassVar[str] = "judge.failed"
    error: str


@dataclass(frozen=True, slots=True)
class CallRecorded(Event):
    """One provider call as it ended, for storage (an addition to DESIGN.md)."""

    type: ClassVar[str] = "call.recorded"
    call: CallRecord


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    type: ClassVar[str] = "run.finished"
    status: str  # "finished" or "finished_without_verdict"
    totals: Mapping[str, Any]
    winner: str | None = None


@dataclass(frozen=True, slots=True)
class RunFailed(Event):
    type: ClassVar[str] = "run.failed"
    error: str
    totals: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunCancelled(Event):
    type: ClassVar[str] = "run.cancelled"
    totals: Mapping[str, Any]


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (
        RunSnapshot,
        RunStarted,
        CandidateStarted,
        CandidateDelta,
        CandidateRetrying,
        CandidateFinished,
        CandidateFailed,
        JudgeStarted,
        JudgeDelta,
        JudgeFinished,
        JudgeFailed,
        CallRecorded,
        RunFinished,
        RunFailed,
        RunCancelled,
    )
}
