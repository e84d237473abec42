"""Runs end to end: a real Celery worker, real Redis, daphne and a real websocket client."""

from __future__ import annotations

import json
import random
import time
from decimal import Decimal

import pytest
from django.utils import timezone
from websockets.sync.client import connect

from tests.workbench.runs.helpers import (
    Rebuilt,
    session_headers,
    simulated_pool,
    start_run,
    wait_for_end,
    watch,
)
from workbench.lib.stack import Stack
from workbench.pools.models import Mode
from workbench.runs.models import CandidateStatus, RunStatus
from workbench.runs.services import run_cancel

pytestmark = pytest.mark.slow

FAST = "sim-fast@ttft=0.01,tps=400,tokens=40"


def stored_texts(run) -> dict[str, str]:
    texts = {f"{c.member}/{c.round}": c.text for c in run.candidates.all()}
    texts.update({part: data["text"] for part, data in (run.judge_parts or {}).items()})
    return texts


def test_it_runs_a_pool_and_records_every_call(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, "sim-balanced@ttft=0.02,tps=500,tokens=30",
                                             FAST])  # fmt: skip
    run = wait_for_end(start_run(pool, alice))

    assert run.status == RunStatus.FINISHED, run.error
    candidates = list(run.candidates.order_by("position"))
    assert [c.status for c in candidates] == [CandidateStatus.DONE] * 3
    assert all(c.text.startswith("[simulated") for c in candidates)
    assert run.verdict and run.winner in {"m1", "m2", "m3"}
    assert run.fused_text == next(c.text for c in candidates if c.member == run.winner)
    calls = list(run.calls.all())
    assert {c.candidate for c in calls} >= {"m1", "m2", "m3", "judge"}
    assert run.total_cost == sum((c.cost for c in calls), Decimal(0))
    assert run.input_tokens == sum(c.input_tokens for c in calls)


def test_it_streams_text_over_the_websocket_equal_to_the_stored_text(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast@ttft=0.05,tps=200,tokens=80"] * 3)
    run = start_run(pool, alice)
    state = Rebuilt()
    types = []
    for message in watch(live_stack.ws_url, run, session_headers(alice, live_stack.url)):
        types.append(message["type"])
        state.apply(message)
    run = wait_for_end(run)
    assert types[0] == "run.snapshot"
    assert "candidate.delta" in types and "judge.finished" in types
    assert state.texts == {p: t for p, t in stored_texts(run).items()}


def test_it_runs_a_debate_round_by_round_and_records_each_call(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(
        workspace, alice, ["sim-fast@ttft=0.02,tps=300,tokens=30"] * 2, mode=Mode.DEBATE, rounds=2
    )
    pool.judge_swap_twice = True
    pool.save()
    run = start_run(pool, alice)
    state = Rebuilt()
    for message in watch(live_stack.ws_url, run, session_headers(alice, live_stack.url)):
        state.apply(message)
    run = wait_for_end(run)

    assert run.status == RunStatus.FINISHED, run.error
    # Every member answers (round 0), then revises in each of the two debate rounds: a
    # candidate row and a call each.
    expected = [(m, r) for m in ("m1", "m2") for r in (0, 1, 2)]
    rows = {(c.member, c.round): c for c in run.candidates.all()}
    assert sorted(rows) == expected
    assert all(c.status == CandidateStatus.DONE and c.text for c in rows.values())
    calls = run.calls.all()
    member_calls = sorted((c.candidate, c.round) for c in calls if c.candidate.startswith("m"))
    assert member_calls == expected
    # The debate ends in a merge: the analysis twice (both orders), then the synthesis, each
    # pass recorded as its own call.
    judge_calls = sorted((c.candidate, c.phase) for c in calls if c.candidate.startswith("judge"))
    assert judge_calls == [("judge", "analysis"), ("judge", "synthesis"), ("judge#2", "analysis")]
    # What a browser rebuilt from the socket, every round and judge pass, equals what is stored.
    assert state.texts == stored_texts(run)
    assert run.total_cost == sum((c.cost for c in run.calls.all()), Decimal(0))


def test_it_rebuilds_identical_texts_however_often_a_client_reconnects(
    live_stack: Stack, alice, workspace
) -> None:
    # Two seconds of streaming, left after a few messages each time: several reconnects even
    # when a loaded machine coalesces many deltas into each message.
    pool = simulated_pool(workspace, alice, ["sim-fast@ttft=0.05,tps=75,tokens=150"] * 3)
    run = start_run(pool, alice)
    headers = session_headers(alice, live_stack.url)
    rng = random.Random(7)
    state = Rebuilt()
    reconnects = 0
    while state.status not in ("finished", "failed", "cancelled", "finished_without_verdict"):
        url = f"{live_stack.ws_url}/ws/runs/{run.pk}/?after={state.seq}"
        with connect(url, additional_headers=headers) as ws:
            for _ in range(rng.randint(1, 8)):
                message = json.loads(ws.recv(timeout=20))
                state.apply(message)
                if state.status in ("finished", "failed", "cancelled", "finished_without_verdict"):
                    break
        reconnects += 1
    run = wait_for_end(run)
    assert reconnects > 3
    assert state.texts == stored_texts(run)
    # Back once more, holding everything: a light snapshot (no text re-sent) that fits.
    url = f"{live_stack.ws_url}/ws/runs/{run.pk}/?after={state.seq}"
    with connect(url, additional_headers=headers) as ws:
        state.apply(json.loads(ws.recv(timeout=20)))
    assert state.snapshots["light"] >= 1
    assert state.texts == stored_texts(run)


def test_it_keeps_fusing_when_a_member_fails_mid_stream(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST, "sim-fast@ttft=0.01,tps=400,truncate=1", FAST])
    run = wait_for_end(start_run(pool, alice))
    assert run.status == RunStatus.FINISHED
    broken = run.candidates.get(member="m2")
    assert broken.status == CandidateStatus.FAILED
    assert "truncat" in broken.error.lower()
    assert run.winner in {"m1", "m3"}


def test_it_keeps_the_candidates_when_the_judge_fails(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST], judge="sim-judge@fail=1,ttft=0.01")
    run = wait_for_end(start_run(pool, alice), timeout=60)
    assert run.status == RunStatus.FINISHED_WITHOUT_VERDICT
    assert run.error
    assert [c.status for c in run.candidates.all()] == [CandidateStatus.DONE] * 2
    assert run.calls.filter(candidate__startswith="judge", status="failed").exists()


def test_it_cancels_a_run_within_a_second(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, "sim-hang"])
    run = start_run(pool, alice)
    deadline = time.monotonic() + 20
    while not run.candidates.filter(member="m2", status=CandidateStatus.STREAMING).exists():
        assert time.monotonic() < deadline, "the hanging member never started"
        time.sleep(0.05)
    asked = timezone.now()
    run_cancel(run=run, user=alice)
    run = wait_for_end(run, timeout=5)
    # Ended by the worker (its own clock, this machine's) within a second of the request.
    assert (run.finished_at - asked).total_seconds() < 1.0
    assert run.status == RunStatus.CANCELLED
    hanging = run.candidates.get(member="m2")
    assert hanging.status == CandidateStatus.CANCELLED
    assert hanging.text  # the partial output is kept


def _wait_until(condition, timeout: float = 20, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


SLOW = "sim-balanced@ttft=0.01,tps=12,tokens=60"  # about five seconds of streaming


def _wait_for_m1_done_while_m2_streams(run) -> None:
    _wait_until(
        lambda: (
            run.candidates.filter(member="m1", status=CandidateStatus.DONE).exists()
            and run.candidates.filter(member="m2", status=CandidateStatus.STREAMING).exists()
        ),
        what="m1 done while m2 streams",
    )


def test_it_resumes_after_the_worker_is_killed_without_asking_finished_members_again(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST, SLOW])
    run = start_run(pool, alice)
    _wait_for_m1_done_while_m2_streams(run)
    live_stack.worker.kill()
    # A new worker that restores unacknowledged tasks older than 2 s: the killed one's run.
    live_stack.start_worker(
        "resume",
        CELERY_VISIBILITY_TIMEOUT_S="2",
        CELERY_RESTORE_INTERVAL_S="1",
        CELERY_RESTORE_THROTTLE="1",
    )
    run = wait_for_end(run, timeout=60)

    assert run.status == RunStatus.FINISHED, run.error
    assert run.attempts == 2
    assert run.calls.filter(candidate="m1").count() == 1, "m1 finished before: not asked again"
    assert run.candidates.get(member="m2").status == CandidateStatus.DONE


def test_it_resumes_a_killed_workers_run_with_the_default_visibility_timeout(
    live_stack: Stack, alice, workspace, settings
) -> None:
    """Nothing comes back from the broker for 40 minutes (the default visibility timeout):
    the reaper notices the silence and re-enqueues the run, which resumes elsewhere."""
    from workbench.runs.services import runs_reap

    settings.FUSION_REAPER_STALE_S = 5  # the default is 120 s; the mechanism is the same
    pool = simulated_pool(workspace, alice, [FAST, SLOW])
    run = start_run(pool, alice)
    _wait_for_m1_done_while_m2_streams(run)
    live_stack.worker.kill()
    worker = live_stack.start_worker("resume-default")  # default visibility timeout
    reaped = []
    deadline = time.monotonic() + 60
    while not run.is_terminal:  # what Celery beat does every REAPER_EVERY_S
        assert time.monotonic() < deadline, f"run still {run.status}"
        reaped += runs_reap().resumed
        time.sleep(0.5)
        run.refresh_from_db()

    assert run.status == RunStatus.FINISHED, run.error
    assert reaped == [str(run.pk)] and (run.resumes, run.attempts) == (1, 2)
    assert run.calls.filter(candidate="m1").count() == 1, "m1 finished before: not asked again"
    assert run.candidates.get(member="m2").status == CandidateStatus.DONE
    assert "runs.execute" in worker.log()

    # The killed worker's own delivery comes back at last (here: to a worker that restores
    # unacknowledged tasks after 1 s): it finds the run finished and does nothing.
    assert str(run.pk) in _unacknowledged_runs(), "the killed worker's delivery is still due"
    calls = run.calls.count()
    worker.stop()
    late = live_stack.start_worker(
        "late", CELERY_VISIBILITY_TIMEOUT_S="1", CELERY_RESTORE_INTERVAL_S="1",
        CELERY_RESTORE_THROTTLE="1",
    )  # fmt: skip
    _wait_until(
        lambda: str(run.pk) not in _unacknowledged_runs() and "succeeded" in late.log(),
        what="the late delivery to be handled",
    )
    run.refresh_from_db()
    assert (run.status, run.attempts, run.calls.count()) == (RunStatus.FINISHED, 2, calls)


def _unacknowledged_runs() -> set[str]:
    """Run ids of the tasks the broker holds as delivered but not acknowledged."""
    import base64

    import redis
    from django.conf import settings as django_settings

    client = redis.Redis.from_url(django_settings.REDIS_URL)  # the broker's Redis
    try:
        entries = client.hvals("unacked")
    finally:
        client.close()
    runs = set()
    for entry in entries:
        message = json.loads(entry)[0]
        args = json.loads(base64.b64decode(message["body"]))[0]
        runs.update(str(arg) for arg in args)
    return runs


def test_it_reaps_a_run_whose_worker_died(live_stack: Stack, alice, workspace, settings) -> None:
    from workbench.runs.services import runs_reap

    settings.FUSION_RESUME_ATTEMPTS = 0  # fail at once rather than resume
    pool = simulated_pool(workspace, alice, [FAST, SLOW])
    run = start_run(pool, alice)
    _wait_until(
        lambda: run.candidates.filter(member="m1", status=CandidateStatus.DONE).exists(),
        what="m1 done",
    )
    headers = session_headers(alice, live_stack.url)
    live_stack.worker.kill()
    time.sleep(1.2)
    assert runs_reap(stale_after_s=1).failed == [str(run.pk)]

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "stopped responding" in run.error
    assert run.candidates.get(member="m1").status == CandidateStatus.DONE  # kept
    assert run.candidates.get(member="m2").status == CandidateStatus.FAILED
    first = next(watch(live_stack.ws_url, run, headers))
    assert first["type"] == "run.snapshot" and first["state"]["run"]["status"] == "failed"


def test_it_shows_a_member_retrying_then_answering(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, "sim-fast@fail=1,ttft=0.01"])
    member = pool.members.get(model="sim-fast@fail=1,ttft=0.01")
    member.fallback_models = [FAST]
    member.save()
    run = start_run(pool, alice)
    messages = list(watch(live_stack.ws_url, run, session_headers(alice, live_stack.url)))
    retrying = [m for m in messages if m["type"] == "candidate.retrying"]
    assert retrying and retrying[0]["candidate"] == "m2"
    assert "simulated overload" in retrying[0]["error"]
    run = wait_for_end(run)
    m2 = run.candidates.get(member="m2")
    assert m2.status == CandidateStatus.DONE and m2.model == FAST and m2.error == ""
    assert run.calls.get(candidate="m2").attempts == 4  # three tries, then the fallback


def test_it_fails_a_run_past_its_time_limit_keeping_its_output(
    live_stack: Stack, alice, workspace
) -> None:
    live_stack.worker.stop()  # only a worker with a 2-second limit may take this run
    live_stack.start_worker("limited", RUN_TIME_LIMIT_S="2")
    pool = simulated_pool(workspace, alice, [FAST, "sim-hang"])
    run = wait_for_end(start_run(pool, alice), timeout=30)
    assert run.status == RunStatus.FAILED
    assert "time limit of 2 s" in run.error
    assert run.candidates.get(member="m1").status == CandidateStatus.DONE
    hanging = run.candidates.get(member="m2")
    assert hanging.status == CandidateStatus.CANCELLED and hanging.text
