"""The sink against a real Redis: coalescing, seq, and snapshot + tail equal to the texts."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal

import pytest

from fusion import events as ev
from fusion.types import Usage
from workbench.runs.live import LiveStore
from workbench.runs.publish import redis_client
from workbench.runs.sink import RunSink


class RecorderSpy:
    def __init__(self) -> None:
        self.events: list[str] = []
        self.checkpoints: list[dict[str, str]] = []

    def on_event(self, event: ev.Event, seq: int) -> None:
        self.events.append(event.type)

    def checkpoint(self, texts: dict[str, str], seq: int) -> None:
        self.checkpoints.append(texts)


class Published:
    def __init__(self) -> None:
        self.events: list[dict] = []

    async def __call__(self, events: list[str], seqs: list[int]) -> None:
        decoded = [json.loads(e) for e in events]
        assert [e["seq"] for e in decoded] == seqs
        self.events.extend(decoded)


@pytest.fixture
async def live():
    client = redis_client()
    yield LiveStore(client)
    await client.aclose()


def _sink(live: LiveStore, run_id: str, published: Published, **kw) -> RunSink:
    return RunSink(run_id=run_id, live=live, publish=published, recorder=RecorderSpy(), **kw)


async def _stream(sink: RunSink, run_id: str, pieces: list[str]) -> None:
    await sink(ev.CandidateStarted(seq=0, run=run_id, candidate="m1", round=0,
                                   provider="sim", model="sim-fast"))  # fmt: skip
    for piece in pieces:
        await sink(ev.CandidateDelta(seq=0, run=run_id, candidate="m1", round=0, text=piece))
        await asyncio.sleep(0)


async def test_it_coalesces_deltas_and_numbers_events_without_gaps(live: LiveStore) -> None:
    run_id = str(uuid.uuid4())
    published = Published()
    sink = _sink(live, run_id, published, flush_interval=0.05)
    sink.start()
    pieces = [f"tok{i} " for i in range(500)]
    await _stream(sink, run_id, pieces)
    await sink(ev.CandidateFinished(
        seq=0, run=run_id, candidate="m1", round=0, model="sim-fast", text="".join(pieces),
        usage=Usage(3, 500), cost=Decimal("0.001"), latency_ms=10, ttft_ms=1,
        finish_reason="stop"))  # fmt: skip
    await sink.close()
    seqs = [e["seq"] for e in published.events]
    assert seqs == list(range(1, len(seqs) + 1))
    deltas = [e for e in published.events if e["type"] == "candidate.delta"]
    assert len(deltas) < 50, "500 deltas sent within a few ms must be coalesced"
    assert "".join(d["text"] for d in deltas) == "".join(pieces)
    finished = published.events[-1]
    assert finished["type"] == "candidate.finished" and "text" not in finished
    await live.delete(run_id)


async def test_it_keeps_a_snapshot_that_plus_the_tail_rebuilds_the_text(live: LiveStore) -> None:
    run_id = str(uuid.uuid4())
    published = Published()
    sink = _sink(live, run_id, published, flush_interval=0.0)
    sink.start()
    pieces = ["héllo ", "wörld ", "🙂 ", "done"] * 50
    await _stream(sink, run_id, pieces[:100])
    await sink.flush()
    snapshot = await live.snapshot(run_id)
    assert snapshot is not None
    await _stream_more(sink, run_id, pieces[100:])
    await sink.close()
    text = snapshot.parts["m1/0"]["text"]
    for event in published.events:
        if event["seq"] > snapshot.seq and event["type"] == "candidate.delta":
            text += event["text"]
    assert text == "".join(pieces)
    await live.delete(run_id)


async def _stream_more(sink: RunSink, run_id: str, pieces: list[str]) -> None:
    for piece in pieces:
        await sink(ev.CandidateDelta(seq=0, run=run_id, candidate="m1", round=0, text=piece))


async def test_it_starts_a_restarted_candidate_text_over(live: LiveStore) -> None:
    run_id = str(uuid.uuid4())
    sink = _sink(live, run_id, Published(), flush_interval=0.0)
    sink.start()
    await _stream(sink, run_id, ["partial answer from a dead worker"])
    await _stream(sink, run_id, ["fresh"])
    await sink.close()
    snapshot = await live.snapshot(run_id)
    assert snapshot is not None and snapshot.parts["m1/0"]["text"] == "fresh"
    await live.delete(run_id)


async def test_it_continues_the_seq_of_an_earlier_attempt(live: LiveStore) -> None:
    run_id = str(uuid.uuid4())
    first = Published()
    sink = _sink(live, run_id, first, flush_interval=0.0)
    sink.start()
    await _stream(sink, run_id, ["a", "b"])
    await sink.close()
    snapshot = await live.snapshot(run_id)
    second = Published()
    resumed = _sink(live, run_id, second, resume_from=snapshot, flush_interval=0.0)
    resumed.seed(snapshot)
    resumed.start()
    await _stream(resumed, run_id, ["c"])
    await resumed.close()
    assert second.events[0]["seq"] == first.events[-1]["seq"] + 1
    await live.delete(run_id)


async def test_it_rewrites_the_whole_state_when_redis_lost_it(live: LiveStore) -> None:
    run_id = str(uuid.uuid4())
    published = Published()
    sink = _sink(live, run_id, published, flush_interval=0.0)
    sink.start()
    await _stream(sink, run_id, ["before ", "the ", "restart "])
    await sink.flush()
    await live.delete(run_id)  # as a Redis restart without persistence would
    await _stream_more(sink, run_id, ["and ", "after"])
    await sink.flush()
    snapshot = await live.snapshot(run_id)
    assert snapshot is not None
    assert snapshot.parts["m1/0"]["text"] == "before the restart and after"
    assert snapshot.seq == published.events[-1]["seq"]
    await sink.close()
    await live.delete(run_id)
