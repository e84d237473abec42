"""The engine's behaviour: logic on the simulated provider, HTTP on the loopback upstream."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from fusion.calls import Backoff
from fusion.costs import Price
from fusion.engine import estimate_run_cost, run_fusion
from fusion.errors import BudgetExceeded
from fusion.events import CandidateDelta, Event
from fusion.providers.base import Endpoint, Timeouts
from fusion.providers.openai import OpenAIProvider
from fusion.providers.transport import HttpClient
from fusion.results import (
    CompletedCandidate,
    candidate_key,
    result_to_dict,
    spec_from_dict,
    spec_to_dict,
)
from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from fusion.types import ApiKey, JudgeSpec, Member, RunSpec

from .runkit import FAST, JUDGE, Recorder, members, sim_endpoints, spec

QUICK = Backoff(base_s=0.001, cap_s=0.01)
SLOW = "sim-slow@ttft=5,tps=0"


async def run(s: RunSpec, endpoints: dict[str, Endpoint] | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    sink = Recorder()
    kwargs.setdefault("backoff", QUICK)
    result = await run_fusion(s, endpoints or sim_endpoints(), sink, run_id="run-1", **kwargs)  # type: ignore[arg-type]
    return result, sink


def by_id(result, round: int = 0):  # type: ignore[no-untyped-def]
    return {c.id: c for c in result.candidates if c.round == round}


# --- fan-out, events, records ------------------------------------------------------------------


async def test_it_fans_out_to_members_in_parallel() -> None:
    s = spec(["sim@ttft=0.1,tps=0,tokens=10"] * 8)
    start = time.perf_counter()
    result, _ = await run(s)
    assert time.perf_counter() - start < 0.35  # 8 x 100 ms one after another would be 800 ms
    assert result.status == "finished"
    assert [c.status for c in result.candidates] == ["ok"] * 8


async def test_it_fuses_the_same_model_several_times() -> None:
    result, _ = await run(spec([FAST, FAST, FAST]))
    texts = {c.text for c in result.candidates}
    assert len(texts) == 3
    assert result.verdict is not None and result.verdict.winner in {"m1", "m2", "m3"}
    assert result.answer == by_id(result)[result.verdict.winner].text


async def test_it_takes_one_to_sixteen_members_with_unique_ids() -> None:
    result, _ = await run(spec([FAST] * 16, judge=None))
    assert len(result.candidates) == 16
    with pytest.raises(ValueError, match="1 to 16"):
        await run(spec([FAST] * 17))
    with pytest.raises(ValueError, match="unique"):
        await run(replace(spec([FAST]), members=(Member("a", "sim", FAST),) * 2))


async def test_it_numbers_events_from_one_without_gaps() -> None:
    result, sink = await run(spec(swap_twice=True))
    seqs = [e.seq for e in sink.events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {e.run for e in sink.events} == {"run-1"}
    assert sink.types()[0] == "run.started" and sink.types()[-1] == "run.finished"
    assert result.last_seq == seqs[-1]
    for e in sink.events:
        json.dumps(e.to_dict())


async def test_it_hands_a_slow_sink_one_event_at_a_time_in_seq_order() -> None:
    inside = 0
    seen: list[int] = []

    async def slow(event: Event) -> None:
        nonlocal inside
        inside += 1
        assert inside == 1, "two sink calls overlapped"
        await asyncio.sleep(0.001 if event.seq % 3 else 0)  # a sink that publishes
        seen.append(event.seq)
        inside -= 1

    s = spec(["sim@ttft=0,tps=400,tokens=40"] * 4)
    result = await run_fusion(s, sim_endpoints(), slow, run_id="r", backoff=QUICK)
    assert result.status == "finished"
    assert seen == list(range(1, len(seen) + 1)) and len(seen) > 30


async def test_it_streams_each_candidate_byte_for_byte() -> None:
    s = spec(["sim@ttft=0,tps=2000,tokens=60"] * 3)
    result, sink = await run(s)
    for c in result.candidates:
        assert sink.deltas(c.id) == c.text
        finished = [e for e in sink.of("candidate.finished") if e.candidate == c.id]  # type: ignore[attr-defined]
        assert finished[0].text == c.text  # type: ignore[attr-defined]


async def test_it_records_every_provider_call() -> None:
    result, sink = await run(spec(mode="merge", swap_twice=True))
    recorded = [e.call for e in sink.of("call.recorded")]  # type: ignore[attr-defined]
    assert recorded == list(result.calls)
    assert sorted((c.candidate, c.phase) for c in result.calls) == [
        ("judge", "analysis"),
        ("judge", "synthesis"),
        ("judge#2", "analysis"),
        ("m1", None),
        ("m2", None),
        ("m3", None),
    ]
    for call in result.calls:
        assert call.status == "ok" and call.attempts == 1
        assert call.usage.output_tokens > 0 and call.cost is not None and call.cost > 0
        assert call.latency_ms >= 0 and call.ttft_ms is not None
    assert result.totals.cost == sum(c.cost for c in result.calls)  # type: ignore[misc]
    assert result.totals.calls == 6 and not result.totals.unpriced


# --- quorum, deadline, partial failure -----------------------------------------------------------


async def test_it_judges_at_quorum_and_cancels_the_stragglers() -> None:
    s = spec([FAST, FAST, FAST, SLOW], quorum=3)
    start = time.perf_counter()
    result, sink = await run(s)
    assert time.perf_counter() - start < 1.0
    assert result.status == "finished"
    m4 = by_id(result)["m4"]
    assert m4.status == "cancelled" and m4.error == "quorum reached"
    assert [c.status for c in result.calls if c.candidate == "m4"] == ["cancelled"]
    failed = [e for e in sink.of("candidate.failed") if e.candidate == "m4"]  # type: ignore[attr-defined]
    assert failed[0].status == "cancelled"  # type: ignore[attr-defined]
    assert result.verdict is not None and result.verdict.winner != "m4"


async def test_it_judges_at_the_deadline() -> None:
    s = spec([FAST, FAST, SLOW], deadline_s=0.3)
    start = time.perf_counter()
    result, _ = await run(s)
    assert 0.3 <= time.perf_counter() - start < 1.0
    assert by_id(result)["m3"].status == "cancelled"
    assert by_id(result)["m3"].error == "deadline passed"
    assert result.verdict is not None and set(result.verdict.scores) == {"m1", "m2"}


async def test_it_waits_for_every_member_without_a_quorum() -> None:
    result, _ = await run(spec([FAST, FAST, "sim@ttft=0.3,tps=0,tokens=10"]))
    assert [c.status for c in result.candidates] == ["ok"] * 3


async def test_it_waits_for_all_that_can_finish_when_quorum_is_out_of_reach() -> None:
    s = spec([FAST, "sim@ttft=0,fail=1", "sim@ttft=0.2,tps=0,tokens=10"], quorum=3)
    result, _ = await run(s)
    statuses = {c.id: c.status for c in result.candidates}
    assert statuses == {"m1": "ok", "m2": "failed", "m3": "ok"}
    assert result.status == "finished"


async def test_it_fuses_the_rest_when_some_members_fail() -> None:
    result, sink = await run(spec([FAST, "nope", FAST]))
    m2 = by_id(result)["m2"]
    assert m2.status == "failed" and m2.permanent and "unknown simulated model" in (m2.error or "")
    assert result.status == "finished"
    assert result.verdict is not None and set(result.verdict.scores) == {"m1", "m3"}
    assert len(sink.of("candidate.failed")) == 1


async def test_it_keeps_the_candidates_when_the_judge_fails() -> None:
    result, sink = await run(spec(judge="nope"))
    assert result.status == "finished_without_verdict"
    assert result.verdict is None and result.answer is None
    assert "judge failed" in (result.judge_error or "")
    assert [c.status for c in result.candidates] == ["ok"] * 3
    assert len(sink.of("judge.failed")) == 1 and sink.types()[-1] == "run.finished"


async def test_it_fails_the_run_only_without_any_usable_candidate() -> None:
    result, sink = await run(spec(["nope", "nope2"]))
    assert result.status == "failed" and "no usable candidate" in (result.error or "")
    assert sink.types()[-1] == "run.failed"
    assert not sink.of("judge.started")


async def test_it_skips_the_judge_with_a_single_usable_candidate() -> None:
    result, _sink = await run(spec([FAST, "nope"]))
    assert result.verdict is not None and result.verdict.winner == "m1"
    assert not result.verdict.judged
    assert not [c for c in result.calls if c.candidate.startswith("judge")]
    assert result.answer == by_id(result)["m1"].text


async def test_it_finishes_without_a_judge_when_none_is_configured() -> None:
    result, sink = await run(spec(judge=None))
    assert result.status == "finished" and result.verdict is None
    assert not sink.of("judge.started")


async def test_it_retries_before_the_first_token_up_to_max_attempts() -> None:
    result, _ = await run(spec([FAST, "sim@ttft=0,fail=1"], max_attempts=4))
    call = next(c for c in result.calls if c.candidate == "m2")
    assert call.status == "failed" and call.attempts == 4
    assert "simulated overload" in (call.error or "")


async def test_it_falls_back_to_the_next_model_before_the_first_token() -> None:
    s = replace(
        spec(max_attempts=1),
        members=(Member("m1", "sim", "sim@ttft=0,fail=1", fallback_models=(FAST,)),),
    )
    result, _ = await run(s)
    m1 = by_id(result)["m1"]
    assert m1.status == "ok" and m1.model == FAST
    assert result.calls[0].attempts == 2 and result.calls[0].model == FAST


async def test_it_tells_the_sink_before_each_retry_and_each_fallback() -> None:
    s = replace(
        spec(max_attempts=2),
        members=(Member("m1", "sim", "sim@ttft=0,fail=1", fallback_models=(FAST,)),),
    )
    _, sink = await run(s)
    retries = sink.of("candidate.retrying")
    assert [(e.attempt, e.model) for e in retries] == [(1, "sim@ttft=0,fail=1"), (2, FAST)]
    assert all("simulated overload" in e.error for e in retries)
    kinds = sink.types()
    assert kinds.index("candidate.retrying") < kinds.index("candidate.finished")


async def test_it_never_splices_a_fallback_onto_a_cut_stream() -> None:
    cut = "sim@ttft=0,tps=0,truncate=1"
    s = replace(spec(), members=(Member("m1", "sim", cut, fallback_models=(FAST,)),))
    result, sink = await run(s)
    m1 = by_id(result)["m1"]
    assert m1.status == "failed" and m1.model == cut
    assert m1.text and sink.deltas("m1") == m1.text
    assert result.calls[0].attempts == 1 and result.calls[0].usage.estimated


# --- budget --------------------------------------------------------------------------------------


async def test_it_refuses_a_run_estimated_over_budget() -> None:
    s = spec()
    estimate = estimate_run_cost(s)
    assert estimate.usd is not None and estimate.usd > 0
    assert estimate.calls == 4  # three members and one judge pass
    sink = Recorder()
    with pytest.raises(BudgetExceeded):
        await run_fusion(
            replace(s, budget_usd=estimate.usd * Decimal("0.99")),
            sim_endpoints(),
            sink,
            run_id="r",
        )
    assert sink.events == []
    result, _ = await run(replace(s, budget_usd=estimate.usd))
    assert result.status == "finished"


async def test_it_counts_rounds_and_judge_passes_in_the_estimate() -> None:
    base = estimate_run_cost(spec(mode="debate", rounds=2, swap_twice=True))
    assert base.calls == 3 * 3 + 2 + 1  # 3 members x 3 rounds, two analyses, one synthesis
    cheap = estimate_run_cost(spec(mode="best_of"))
    assert base.usd is not None and cheap.usd is not None and base.usd > cheap.usd


async def test_it_flags_unpriced_models_instead_of_counting_them_free() -> None:
    prices = {"sim-judge*": Price(Decimal(1), Decimal(1))}
    estimate = estimate_run_cost(spec(), prices)
    assert estimate.usd is None and estimate.priced_usd > 0
    assert estimate.unpriced_models == (FAST,)
    result, sink = await run(spec(), prices=prices)
    assert sink.events[0].estimated_cost is None  # type: ignore[attr-defined]
    assert result.totals.unpriced and result.totals.cost is None
    assert result.totals.priced_cost > 0
    assert {c.cost is None for c in result.calls if c.candidate.startswith("m")} == {True}


async def test_it_stops_dispatching_once_actual_spend_reaches_the_cap() -> None:
    # Answers far longer than the estimate's default ceiling make real spend outrun it.
    s = spec(["sim-fast@ttft=0,tps=0,tokens=30000"] * 2, mode="debate", rounds=1)
    budget = estimate_run_cost(s).priced_usd
    result, _sink = await run(replace(s, budget_usd=budget))
    assert [c.status for c in result.candidates if c.round == 0] == ["ok", "ok"]
    assert [c.status for c in result.candidates if c.round == 1] == ["skipped", "skipped"]
    skipped = [c for c in result.calls if c.status == "skipped"]
    assert {(c.candidate, c.round) for c in skipped} >= {("m1", 1), ("m2", 1)}
    assert any(c.candidate == "judge" for c in skipped)
    assert result.status == "finished_without_verdict"
    assert "budget" in (result.judge_error or "")


# --- cancellation and resume ------------------------------------------------------------------


async def test_it_closes_every_stream_within_100ms_of_cancel() -> None:
    cancel = asyncio.Event()
    sink = Recorder()
    first_deltas = asyncio.Event()

    async def watch(event: Event) -> None:
        await sink(event)
        if len(sink.of("candidate.delta")) == 3:
            first_deltas.set()

    s = spec(["sim-hang@ttft=0.01"] * 3)
    task = asyncio.create_task(run_fusion(s, sim_endpoints(), watch, run_id="r", cancel=cancel))
    await asyncio.wait_for(first_deltas.wait(), 2)
    start = time.perf_counter()
    cancel.set()
    result = await task
    assert time.perf_counter() - start < 0.1
    assert result.status == "cancelled"
    assert sink.types()[-1] == "run.cancelled"
    assert all(c.status == "cancelled" and c.text for c in result.candidates)
    assert [c.status for c in result.calls] == ["cancelled"] * 3


async def test_it_resumes_without_asking_for_completed_candidates_again() -> None:
    earlier = CompletedCandidate(text="an earlier answer", model=FAST, cost=Decimal("0.01"))
    s = spec()
    result, sink = await run(s, completed={candidate_key("m1", 0): earlier}, first_seq=41)
    assert sink.events[0].seq == 41
    assert sink.events[0].resumed == ("m1",)  # type: ignore[attr-defined]
    assert not [c for c in result.calls if c.candidate == "m1"]
    assert not [e for e in sink.of("candidate.started") if e.candidate == "m1"]  # type: ignore[attr-defined]
    m1 = by_id(result)["m1"]
    assert m1.resumed and m1.text == "an earlier answer"
    assert result.verdict is not None and "m1" in result.verdict.scores
    assert result.totals.cost == Decimal("0.01") + sum(c.cost for c in result.calls)  # type: ignore[misc]


# --- debate ----------------------------------------------------------------------------------


async def test_it_runs_debate_rounds_then_judges_the_final_answers() -> None:
    result, sink = await run(spec(mode="debate", rounds=2))
    assert sorted({c.round for c in result.candidates}) == [0, 1, 2]
    for c in result.candidates:
        if c.round:
            assert f"Revised answer (round {c.round})" in c.text
    assert sink.deltas("m1", 2) == by_id(result, 2)["m1"].text
    assert len(result.calls) == 9 + 2
    assert result.answer is not None and "Merged answer" in result.answer


async def test_it_leaves_failed_members_out_of_later_rounds() -> None:
    result, _ = await run(spec([FAST, FAST, "nope"], mode="debate", rounds=1))
    assert {c.id for c in result.candidates if c.round == 1} == {"m1", "m2"}
    assert result.verdict is not None and set(result.verdict.scores) == {"m1", "m2"}


# --- serialisation ---------------------------------------------------------------------------


async def test_it_serialises_specs_and_results_to_json() -> None:
    s = replace(spec(mode="debate", rounds=1, swap_twice=True), budget_usd=Decimal("1.25"))
    data = json.loads(json.dumps(spec_to_dict(s)))
    assert data["budget_usd"] == "1.25"
    assert spec_from_dict(data) == s
    with pytest.raises(ValueError, match="unknown run spec"):
        spec_from_dict({**data, "colour": "red"})
    result, _ = await run(s)
    out = json.loads(json.dumps(result_to_dict(result)))
    assert out["status"] == "finished" and isinstance(out["totals"]["cost"], str)
    assert out["verdict"]["winner"] == result.verdict.winner  # type: ignore[union-attr]


# --- over HTTP, on the loopback upstream -------------------------------------------------------

TIMEOUTS = Timeouts(connect=1.0, first_token=3.0, idle=3.0, total=5.0)


def http(up: Upstream, client: HttpClient, *keys: ApiKey) -> dict[str, Endpoint]:
    provider = OpenAIProvider(name="up", base_url=f"{up.url}/v1", client=client, timeouts=TIMEOUTS)
    return {"up": Endpoint(provider, keys), **sim_endpoints()}


def http_spec(*models: str, **fields: object) -> RunSpec:
    return RunSpec(
        mode="best_of",
        prompt="hello",
        members=members(*models, provider="up"),
        judge=JudgeSpec("sim", JUDGE),
        **fields,  # type: ignore[arg-type]
    )


def key(name: str) -> ApiKey:
    return ApiKey(label=f"…{name}", secret=f"sk-secret-{name}")


def auth(up: Upstream, model: str) -> list[str]:
    return [r.headers.get("authorization", "") for r in up.requests_for(model)]


async def test_it_retries_a_rate_limit_honouring_retry_after(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("busy", Script(status=429, retry_after="0.2"), Script(text="finally ok"))
    start = time.perf_counter()
    result, _ = await run(http_spec("busy"), http(upstream, http_client))
    assert time.perf_counter() - start >= 0.2
    assert by_id(result)["m1"].text == "finally ok"
    assert result.calls[0].attempts == 2 and upstream.calls("busy") == 2


async def test_it_falls_back_when_the_upstream_does_not_know_the_model(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("gone", Script(status=404))
    s = http_spec("gone")
    s = replace(s, members=(replace(s.members[0], fallback_models=("up-small",)),))
    result, _ = await run(s, http(upstream, http_client))
    assert by_id(result)["m1"].status == "ok" and by_id(result)["m1"].model == "up-small"
    assert upstream.calls("gone") == 1  # a permanent error is not retried


async def test_it_gives_up_on_a_failing_upstream_after_max_attempts(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("down", Script(status=500))
    result, _ = await run(
        http_spec("down", "up-small", max_attempts=3), http(upstream, http_client)
    )
    assert by_id(result)["m1"].status == "failed" and upstream.calls("down") == 3
    assert by_id(result)["m2"].status == "ok" and result.status == "finished"


async def test_it_moves_to_another_key_when_one_is_rate_limited(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("hot", Script(status=429, retry_after="30"), Script(text="ok"))
    start = time.perf_counter()
    result, _ = await run(http_spec("hot"), http(upstream, http_client, key("a"), key("b")))
    assert time.perf_counter() - start < 1.0  # no 30 s wait: key b was free
    assert auth(upstream, "hot") == ["Bearer sk-secret-a", "Bearer sk-secret-b"]
    assert result.calls[0].key_label == "…b" and by_id(result)["m1"].status == "ok"


async def test_it_drops_a_rejected_key_for_the_rest_of_the_run(
    http_client: HttpClient,
) -> None:
    async with Upstream(valid_keys={"sk-secret-good", "sk-secret-fine"}) as up:
        keys = (key("bad"), key("good"), key("fine"))
        s = replace(http_spec("a", "b", "c"), mode="debate", rounds=1)
        result, _ = await run(s, http(up, http_client, *keys))
        revisions = [r for r in up.requests if "fusion-debate" in json.dumps(r.body)]
        used = [r.headers.get("authorization") for r in up.requests]
    assert [c.status for c in result.candidates] == ["ok"] * 6
    assert "Bearer sk-secret-bad" in used
    assert len(revisions) == 3
    assert {r.headers.get("authorization") for r in revisions} == {
        "Bearer sk-secret-good",
        "Bearer sk-secret-fine",
    }
    assert {c.key_label for c in result.calls if c.candidate.startswith("m")} == {"…good", "…fine"}


async def test_it_fails_permanently_when_every_key_is_rejected(
    http_client: HttpClient,
) -> None:
    async with Upstream(valid_keys={"other"}) as up:
        result, sink = await run(http_spec("a", "b"), http(up, http_client, key("x"), key("y")))
    assert result.status == "failed"
    assert all(c.status == "failed" and c.permanent for c in result.candidates)
    dumped = json.dumps([e.to_dict() for e in sink.events]) + json.dumps(result_to_dict(result))
    assert "sk-secret" not in dumped


async def test_it_fails_a_candidate_whose_stream_is_cut(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("cut", Script(tokens=10, fail="truncate", fail_after=4))
    s = http_spec("cut", "up-small")
    s = replace(s, members=(replace(s.members[0], fallback_models=("up-large",)), s.members[1]))
    result, sink = await run(s, http(upstream, http_client))
    m1 = by_id(result)["m1"]
    assert m1.status == "failed" and m1.text == "w0 w1 w2 w3 "
    assert sink.deltas("m1") == m1.text
    assert upstream.calls("up-large") == 0 and result.status == "finished"


async def test_it_emits_one_delta_per_upstream_token(
    upstream: Upstream, http_client: HttpClient
) -> None:
    upstream.script("words", Script(tokens=25))
    result, sink = await run(http_spec("words"), http(upstream, http_client))
    deltas = [e for e in sink.of("candidate.delta") if isinstance(e, CandidateDelta)]
    assert len(deltas) == 25
    assert "".join(d.text for d in deltas) == by_id(result)["m1"].text


async def test_it_ends_at_once_when_cancelled_before_it_starts() -> None:
    cancel = asyncio.Event()
    cancel.set()
    sink = Recorder()
    result = await run_fusion(spec(), sim_endpoints(), sink, run_id="r", cancel=cancel)
    assert result.status == "cancelled"
    assert sink.types()[-1] == "run.cancelled"
    assert all(c.status == "cancelled" for c in result.candidates)
