"""What a run returns, and JSON-safe (de)serialisation of specs and results.

Runs store a frozen copy of their configuration (``spec_to_dict``) and their outcome
(``result_to_dict``); Decimals travel as strings so no precision is lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, Literal

from fusion.events import jsonable
from fusion.judge import Verdict, verdict_from_dict, verdict_to_dict
from fusion.types import CallRecord, JudgeSpec, Member, RunSpec, Usage

CandidateStatus = Literal["ok", "failed", "cancelled", "skipped"]
RunStatus = Literal["finished", "finished_without_verdict", "failed", "cancelled"]


@dataclass(frozen=True)
class CompletedCandidate:
    """A candidate finished by an earlier attempt of the same run; not requested again."""

    text: str
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    cost: Decimal | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    finish_reason: str = "stop"


def candidate_key(candidate: str, round: int) -> str:
    """The key of ``completed``: "m1" for a first answer, "m1@2" for debate round 2."""
    return candidate if round == 0 else f"{candidate}@{round}"


@dataclass(frozen=True)
class CandidateResult:
    id: str  # the member id
    round: int
    provider: str
    model: str  # the model that answered (a fallback model if the first one failed)
    status: CandidateStatus
    text: str = ""  # kept when failed or cancelled part way
    usage: Usage = field(default_factory=Usage)
    cost: Decimal | None = None
    ttft_ms: float | None = None
    latency_ms: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    permanent: bool = False
    resumed: bool = False  # taken from ``completed``


@dataclass(frozen=True)
class Totals:
    input_tokens: int
    output_tokens: int
    cost: Decimal | None  # None when any call was unpriced
    priced_cost: Decimal  # what the priced calls cost
    unpriced: bool
    wall_ms: float
    calls: int


@dataclass(frozen=True)
class CostEstimate:
    """The most a run can cost, made before dispatch."""

    usd: Decimal | None  # None when a model is unpriced: never a silent $0
    priced_usd: Decimal  # the priced part, what a budget is checked against
    unpriced_models: tuple[str, ...]
    calls: int
    input_tokens: int
    output_tokens: int

    @property
    def has_unpriced(self) -> bool:
        """Whether a model the run may call has no price (so ``usd`` is None)."""
        return bool(self.unpriced_models)


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: RunStatus
    candidates: tuple[CandidateResult, ...]
    verdict: Verdict | None
    calls: tuple[CallRecord, ...]
    totals: Totals
    answer: str | None = None  # the synthesis, or the winner's text
    error: str | None = None  # why the run failed
    judge_error: str | None = None  # why there is no verdict
    estimate: CostEstimate | None = None
    last_seq: int = 0  # the seq of the last event emitted, to resume from


def result_to_dict(result: RunResult) -> dict[str, Any]:
    out = {f.name: jsonable(getattr(result, f.name)) for f in fields(result)}
    out["verdict"] = None if result.verdict is None else verdict_to_dict(result.verdict)
    return out


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def usage_from_dict(data: Mapping[str, Any]) -> Usage:
    return Usage(
        input_tokens=int(data.get("input_tokens", 0)),
        output_tokens=int(data.get("output_tokens", 0)),
        estimated=bool(data.get("estimated", False)),
        reported_cost=_decimal(data.get("reported_cost")),
    )


def completed_from_dict(data: Mapping[str, Any]) -> CompletedCandidate:
    """Read a stored candidate (e.g. a ``CandidateResult`` dict) back for a resume."""
    return CompletedCandidate(
        text=str(data["text"]),
        usage=usage_from_dict(data.get("usage") or {}),
        model=str(data.get("model", "")),
        cost=_decimal(data.get("cost")),
        ttft_ms=data.get("ttft_ms"),
        latency_ms=data.get("latency_ms"),
        finish_reason=str(data.get("finish_reason") or "stop"),
    )


def verdict_of(data: Mapping[str, Any] | None) -> Verdict | None:
    return None if data is None else verdict_from_dict(data)


def spec_to_dict(spec: RunSpec) -> dict[str, Any]:
    out: dict[str, Any] = jsonable(spec)
    return out


def _only(data: Mapping[str, Any], cls: type, what: str) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown {what} field(s): {', '.join(sorted(unknown))}")
    return dict(data)


def spec_from_dict(data: Mapping[str, Any]) -> RunSpec:
    """Rebuild a ``RunSpec``; unknown fields are an error, not silently dropped."""
    raw = _only(data, RunSpec, "run spec")
    members = []
    for item in raw.get("members", ()):
        m = _only(item, Member, "member")
        m["fallback_models"] = tuple(m.get("fallback_models", ()))
        members.append(Member(**m))
    raw["members"] = tuple(members)
    if raw.get("judge") is not None:
        raw["judge"] = JudgeSpec(**_only(raw["judge"], JudgeSpec, "judge"))
    raw["budget_usd"] = _decimal(raw.get("budget_usd"))
    return RunSpec(**raw)
