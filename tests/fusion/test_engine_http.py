"""The engine's orchestration over the real wire: members and the judge on the loopback upstream.

The simulated provider proves the logic (test_engine.py); these prove the same behaviour when
every member and the judge is an HTTP stream that has to be opened, read and closed.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

from fusion.budget import estimate_run_cost
from fusion.calls import Backoff
from fusion.costs import Price
from fusion.engine import run_fusion
from fusion.events import Event
from fusion.providers.base import Endpoint, Timeouts
from fusion.providers.openai import OpenAIProvider
from fusion.providers.transport import HttpClient
from fusion.results import RunResult
from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from fusion.types import JudgeSpec, Member, Mode, RunSpec

from .runkit import Recorder

QUICK = Backoff(base_s=0.001, cap_s=0.01)
TIMEOUTS = Timeouts(connect=1.0, first_token=10.0, idle=10.0, total=20.0)
JUDGE = "judge"
LATE = "late@ttft=5"  # a straggler: five seconds to its first token
_ANSWER = re.compile(r'<answer id="([A-Z])">\n(.*?)\n</answer>', re.DOTALL)


def verdict(winner: str = "A", **scores: float) -> str:
    return json.dumps(
        {
            "scores": scores or {winner: 9},
            "winner": winner,
            "confidence": 0.8,
            "rationale": "scripted",
        }
    )


def endpoints(up: Upstream, client: HttpClient) -> dict[str, Endpoint]:
    provider = OpenAIProvider(name="up", base_url=f"{up.url}/v1", client=client, timeouts=TIMEOUTS)
    return {"up": Endpoint(provider)}


def http_spec(
    *models: str, mode: Mode = "best_of", swap_twice: bool = False, **fields: Any
) -> RunSpec:
    return RunSpec(
        mode=mode,
        prompt="Why is the sky blue?",
        members=tuple(Member(f"m{i}", "up", m) for i, m in enumerate(models, start=1)),
        judge=JudgeSpec("up", JUDGE, swap_twice=swap_twice),
        **fields,
    )


async def run(
    spec: RunSpec, up: Upstream, client: HttpClient, **kwargs: Any
) -> tuple[RunResult, Recorder]:
    sink = Recorder()
    kwargs.setdefault("backoff", QUICK)
    result = await run_fusion(spec, endpoints(up, client), sink, run_id="r", **kwargs)
    return result, sink


def by_id(result: RunResult, round: int = 0) -> dict[str, Any]:
    return {c.id: c for c in result.candidates if c.round == round}


async def until(check: Callable[[], bool], timeout: float = 2.0) -> None:
    """Wait for the server side to catch up (its handlers run on the same loop)."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)


def judge_ballots(up: Upstream) -> list[dict[str, str]]:
    """Label -> answer text, as each judge request showed the answers."""
    out = []
    for r in up.requests_for(JUDGE):
        user = r.body["messages"][-1]["content"]
        out.append(dict(_ANSWER.findall(user)))
    return out


# --- quorum, deadline ------------------------------------------------------------------------


async def test_it_judges_at_quorum_and_closes_the_stragglers_connection(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script(JUDGE, Script(text=verdict("B", A=6, B=8)))
    result, _ = await run(http_spec("fast-1", "fast-2", LATE, quorum=2), upstream, http_client)
    members = by_id(result)
    assert [members[m].status for m in ("m1", "m2", "m3")] == ["ok", "ok", "cancelled"]
    (late_call,) = [c for c in result.calls if c.candidate == "m3"]
    assert late_call.status == "cancelled" and late_call.error == "quorum reached"
    assert result.status == "finished" and result.verdict is not None
    assert result.verdict.winner == "m2"  # B of the two that made the quorum
    assert len(judge_ballots(upstream)[0]) == 2
    await until(lambda: bool(upstream.disconnects))
    assert [d.model for d in upstream.disconnects] == [LATE]  # the stream really was closed


async def test_it_judges_at_the_deadline_without_the_late_member(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script(JUDGE, Script(text=verdict("A", A=7, B=6)))
    result, sink = await run(
        http_spec("fast-1", LATE, "fast-3", deadline_s=0.5), upstream, http_client
    )
    members = by_id(result)
    assert [members[m].status for m in ("m1", "m2", "m3")] == ["ok", "cancelled", "ok"]
    assert members["m2"].error == "deadline passed"
    failed = [e for e in sink.of("candidate.failed") if getattr(e, "candidate", "") == "m2"]
    assert [getattr(e, "status", None) for e in failed] == ["cancelled"]
    assert result.status == "finished" and result.verdict is not None
    assert result.verdict.winner == "m1"
    await until(lambda: bool(upstream.disconnects))
    assert [d.model for d in upstream.disconnects] == [LATE]


# --- budget, partial failure, judge failure ---------------------------------------------------


async def test_it_stops_dispatching_when_reported_spend_reaches_the_cap(
    upstream: Upstream, http_client: HttpClient
) -> None:
    # OpenRouter reports each call's cost; here far more than the price table led us to expect.
    upstream.script("pricey", Script(tokens=5, cost=1.0))
    prices = {"pricey": Price(Decimal(1), Decimal(1)), JUDGE: Price(Decimal(1), Decimal(1))}
    spec = http_spec("pricey", "pricey", mode="debate", rounds=1)
    cap = estimate_run_cost(spec, prices).priced_usd
    result, _ = await run(replace(spec, budget_usd=cap), upstream, http_client, prices=prices)
    assert [c.status for c in result.candidates if c.round == 0] == ["ok", "ok"]
    assert [c.status for c in result.candidates if c.round == 1] == ["skipped", "skipped"]
    assert upstream.calls("pricey") == 2 and upstream.calls(JUDGE) == 0  # nothing more sent
    assert result.totals.priced_cost == Decimal(2)
    assert result.status == "finished_without_verdict"
    assert "budget" in (result.judge_error or "")


async def test_it_fuses_the_members_that_answered_and_lists_the_failures(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("down", Script(status=503, error_message="overloaded"))
    upstream.script("gone", Script(status=404, error_message="no such model"))
    upstream.script(JUDGE, Script(text=verdict("B", A=5, B=9)))
    spec = http_spec("ok-1", "down", "gone", "ok-4", max_attempts=2)
    result, sink = await run(spec, upstream, http_client)
    members = by_id(result)
    assert [members[m].status for m in ("m1", "m2", "m3", "m4")] == ["ok", "failed", "failed", "ok"]
    assert not members["m2"].permanent and members["m3"].permanent
    assert upstream.calls("down") == 2 and upstream.calls("gone") == 1  # 404 is not retried
    failures = {
        getattr(e, "candidate", ""): getattr(e, "error", "") for e in sink.of("candidate.failed")
    }
    assert "overloaded" in failures["m2"] and "no such model" in failures["m3"]
    assert sorted(judge_ballots(upstream)[0]) == ["A", "B"]  # only the two answers
    assert result.status == "finished" and result.verdict is not None
    assert result.verdict.winner == "m4"


async def test_it_keeps_the_candidates_when_the_judge_fails_over_http(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script(JUDGE, Script(status=500, error_message="judge crashed"))
    result, sink = await run(http_spec("a", "b", max_attempts=2), upstream, http_client)
    assert [c.status for c in result.candidates] == ["ok", "ok"]
    assert result.status == "finished_without_verdict" and result.verdict is None
    assert "judge crashed" in (result.judge_error or "")
    assert [getattr(e, "error", "") for e in sink.of("judge.failed")] == [result.judge_error]
    (judge_call,) = [c for c in result.calls if c.candidate == "judge"]
    assert judge_call.status == "failed" and judge_call.attempts == 2
    assert upstream.calls(JUDGE) == 2


# --- strategies -------------------------------------------------------------------------------


async def test_it_runs_debate_rounds_with_the_others_answers_anonymised(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script(JUDGE, Script(text=verdict("C", A=5, B=6, C=8)))
    spec = http_spec("d1", "d2", "d3", mode="debate", rounds=2, debate_judge="best_of")
    result, _ = await run(spec, upstream, http_client)
    assert [(c.id, c.round, c.status) for c in result.candidates] == [
        (m, r, "ok") for r in range(3) for m in ("m1", "m2", "m3")
    ]
    assert [upstream.calls(m) for m in ("d1", "d2", "d3")] == [3, 3, 3]
    first = {c.id: c.text for c in result.candidates if c.round == 0}
    revise = [r for r in upstream.requests_for("d1") if "fusion-debate" in json.dumps(r.body)]
    assert len(revise) == 2
    asked = revise[0].body["messages"]
    shown = dict(_ANSWER.findall(asked[-1]["content"]))
    assert sorted(shown.values()) == sorted([first["m2"], first["m3"]])  # the others' answers
    assert asked[-2] == {"role": "assistant", "content": first["m1"]}  # and its own
    assert not re.search(r"\bm[123]\b", json.dumps(asked))  # no member ids
    # The judge saw the final round's answers.
    final = {c.text for c in result.candidates if c.round == 2}
    assert set(judge_ballots(upstream)[0].values()) == final
    assert result.verdict is not None and result.verdict.winner == "m3"


async def test_it_merges_with_an_analysis_then_streams_the_synthesis(
    upstream: Upstream, http_client: HttpClient
) -> None:
    analysis = {
        "consensus": ["Rayleigh scattering"],
        "contradictions": [],
        "unique_insights": {"B": ["sunsets are red"]},
        "blind_spots": ["ozone"],
        "scores": {"A": 6, "B": 8},
        "winner": "B",
        "confidence": 0.7,
        "rationale": "B is fuller",
    }
    synthesis = "Short wavelengths scatter more, so the sky looks blue; sunsets look red."
    upstream.script(JUDGE, Script(text=json.dumps(analysis)), Script(text=synthesis, token_chars=6))
    result, sink = await run(http_spec("a", "b", mode="merge"), upstream, http_client)
    assert [getattr(e, "phase", "") for e in sink.of("judge.started")] == ["analysis", "synthesis"]
    deltas = [e for e in sink.of("judge.delta") if getattr(e, "phase", "") == "synthesis"]
    assert len(deltas) == -(-len(synthesis) // 6)  # one event per streamed piece
    assert "".join(getattr(e, "text", "") for e in deltas) == synthesis
    assert result.answer == synthesis
    assert result.verdict is not None and result.verdict.analysis is not None
    assert result.verdict.analysis.unique_insights == {"m2": ("sunsets are red",)}
    phases = [(c.phase, c.status) for c in result.calls if c.candidate == "judge"]
    assert phases == [("analysis", "ok"), ("synthesis", "ok")]


async def test_it_judges_twice_with_every_answer_moved_over_the_wire(
    upstream: Upstream, http_client: HttpClient
) -> None:
    # A judge with pure position bias: it always picks whatever it is shown first.
    upstream.script(JUDGE, Script(text=verdict("A", A=9, B=5, C=5)))
    result, sink = await run(http_spec("x1", "x2", "x3", swap_twice=True), upstream, http_client)
    first, second = judge_ballots(upstream)
    assert sorted(first.values()) == sorted(second.values())  # the same three answers
    position = [{text: label for label, text in ballot.items()} for ballot in (first, second)]
    assert all(position[0][t] != position[1][t] for t in position[0])  # every one moved
    started = [getattr(e, "labels", {}) for e in sink.of("judge.started")]
    assert len(started) == 2 and started[0] != started[1]
    assert result.verdict is not None
    assert result.verdict.passes == 2 and result.verdict.agreement is False
    assert result.verdict.confidence < 0.8  # the disagreement cost confidence
    assert [c.candidate for c in result.calls if c.phase == "score"] != []


# --- cancellation -----------------------------------------------------------------------------


async def test_it_closes_every_upstream_connection_within_100ms_of_cancel(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("stuck", Script(tokens=10, fail="hang", fail_after=2))
    cancel = asyncio.Event()
    sink = Recorder()
    streaming = asyncio.Event()

    async def watch(event: Event) -> None:
        await sink(event)
        if len(sink.of("candidate.delta")) == 6:
            streaming.set()

    task = asyncio.create_task(
        run_fusion(
            http_spec("stuck", "stuck", "stuck"),
            endpoints(upstream, http_client),
            watch,
            run_id="r",
            cancel=cancel,
        )
    )
    await asyncio.wait_for(streaming.wait(), 5)
    cancelled_at = time.monotonic()
    cancel.set()
    result = await task
    assert result.status == "cancelled"
    await until(lambda: len(upstream.disconnects) == 3)
    peers = {r.peer for r in upstream.requests_for("stuck")}
    assert {d.peer for d in upstream.disconnects} == peers  # each of the three connections
    late = [round(d.at - cancelled_at, 3) for d in upstream.disconnects]
    assert all(0 <= t < 0.1 for t in late), late
