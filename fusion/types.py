"""Plain data shared by every part of the engine: frozen dataclasses, no behaviour.

Money is always ``Decimal``; ``None`` where a cost is unknown ("unpriced"), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

Role = Literal["system", "user", "assistant"]
Mode = Literal["best_of", "merge", "debate"]
DebateJudge = Literal["best_of", "merge"]
CallStatus = Literal["ok", "failed", "cancelled", "skipped"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class ApiKey:
    """One secret with a harmless label ("…a1b2") that is safe to log and show."""

    label: str
    secret: str = field(repr=False)


@dataclass(frozen=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    # True when the provider reported no usage and we counted ourselves.
    estimated: bool = False
    # Provider-reported cost (OpenRouter's usage.cost), preferred over the price table.
    reported_cost: Decimal | None = None


@dataclass(frozen=True)
class ChatRequest:
    """What one provider call asks for; the key travels separately."""

    model: str
    messages: tuple[Message, ...]
    temperature: float | None = None
    max_tokens: int | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of streamed answer text."""

    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The stream's proper end: a finish reason and the usage, if reported."""

    finish_reason: str
    usage: Usage | None = None


StreamItem = TextDelta | StreamEnd


@dataclass(frozen=True)
class Member:
    """One seat in a pool. ``provider`` names an entry of the providers map given to the engine."""

    id: str
    provider: str
    model: str
    system_prompt: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    fallback_models: tuple[str, ...] = ()


@dataclass(frozen=True)
class JudgeSpec:
    provider: str
    model: str
    instructions: str | None = None
    temperature: float | None = 0.0
    max_tokens: int | None = None
    # Judge twice, every candidate in another position the second time (judge.swapped_order),
    # to control position bias.
    swap_twice: bool = False


@dataclass(frozen=True)
class RunSpec:
    """Everything the engine needs to run one fusion, independent of any database."""

    mode: Mode
    prompt: str
    members: tuple[Member, ...]
    judge: JudgeSpec | None = None
    system_prompt: str | None = None
    rounds: int = 1
    quorum: int | None = None
    deadline_s: float | None = None
    budget_usd: Decimal | None = None
    # How a debate ends: the judge picks the best final answer, or merges them.
    debate_judge: DebateJudge = "merge"
    # Provider calls per model before falling back (retryable errors only, before the first token).
    max_attempts: int = 3


@dataclass(frozen=True)
class CallRecord:
    """One provider call as it is recorded and shown: never the key, only its label."""

    call_id: str
    candidate: str  # member id, or "judge" / "judge#2"
    round: int
    provider: str
    model: str
    key_label: str | None
    status: CallStatus
    usage: Usage
    cost: Decimal | None  # None: unpriced
    ttft_ms: float | None
    latency_ms: float
    attempts: int
    error: str | None = None
    # What a judge call did: "score", "analysis", "synthesis"; None for member calls.
    phase: str | None = None
