"""Helpers for the engine's tests: a recording sink and small specs on the simulated provider."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fusion.events import Event
from fusion.providers.base import Endpoint
from fusion.providers.simulated import SimulatedProvider
from fusion.types import JudgeSpec, Member, Mode, RunSpec

# Fast enough for tests, slow enough that the members overlap.
FAST = "sim-fast@ttft=0.01,tps=0,tokens=30"
JUDGE = "sim-judge@ttft=0.005,tps=0"


class Recorder:
    """A sink that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def deltas(self, candidate: str, round: int = 0) -> str:
        return "".join(
            getattr(e, "text", "")
            for e in self.of("candidate.delta")
            if getattr(e, "candidate", None) == candidate and getattr(e, "round", None) == round
        )


def sim_endpoints(**options: Any) -> dict[str, Endpoint]:
    return {"sim": Endpoint(SimulatedProvider(name="sim", options=options or None))}


def members(*models: str, provider: str = "sim", **fields: Any) -> tuple[Member, ...]:
    return tuple(
        Member(id=f"m{i}", provider=provider, model=model, **fields)
        for i, model in enumerate(models, start=1)
    )


def spec(
    models: Iterable[str] = (FAST, FAST, FAST),
    *,
    mode: Mode = "best_of",
    judge: str | None = JUDGE,
    judge_provider: str = "sim",
    swap_twice: bool = False,
    **fields: Any,
) -> RunSpec:
    return RunSpec(
        mode=mode,
        prompt="How do vector databases index embeddings?",
        members=members(*models),
        judge=None
        if judge is None
        else JudgeSpec(provider=judge_provider, model=judge, swap_twice=swap_twice),
        **fields,
    )
