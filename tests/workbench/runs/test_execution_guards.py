"""Execution's guards, in this process (the engine loop, its database threads, the embedded
Redis): time limits, idempotent redelivery, the status machine against late writers, the
reaper's resumption, and enqueueing only on commit.

Runs are executed by calling ``execution.run_execute`` directly (what the Celery task does),
with enqueueing switched off, so each test decides who executes what and when.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import Retry
from django.db import transaction
from django.utils import timezone
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.workbench.runs.helpers import simulated_pool, start_run
from workbench.accounts.models import User, Workspace
from workbench.keys.services import credential_delete
from workbench.runs import execution, services, tasks
from workbench.runs.engine_loop import ENGINE_LOOP
from workbench.runs.live import LiveStore
from workbench.runs.models import CandidateStatus, Run, RunStatus
from workbench.runs.publish import redis_client
from workbench.runs.recorder import RunRecorder

pytestmark = pytest.mark.usefixtures("transactional_db")

FAST = "sim-fast@ttft=0.01,tps=400,tokens=40"
SLOW = "sim-balanced@ttft=0.01,tps=12,tokens=60"  # about five seconds of streaming


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Run ids handed to Celery (nothing is actually sent to a broker)."""
    sent: list[str] = []
    monkeypatch.setattr(tasks.run_execute, "delay", lambda run_id: sent.append(run_id))
    return sent


@pytest.fixture
def provider_streams(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every model the engine asks for (the simulated provider's stream calls)."""
    from fusion.providers.simulated import SimulatedProvider

    asked: list[str] = []
    original = SimulatedProvider.stream

    def spy(self: Any, request: Any, key: Any) -> Any:
        asked.append(request.model)
        return original(self, request, key)

    monkeypatch.setattr(SimulatedProvider, "stream", spy)
    return asked


def _execute_in_thread(run: Run) -> threading.Thread:
    thread = threading.Thread(target=execution.run_execute, kwargs={"run_id": str(run.pk)})
    thread.start()
    return thread


def _wait_until(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _live_status(run: Run) -> str:
    async def read() -> str:
        client = redis_client()
        try:
            snapshot = await LiveStore(client).snapshot(str(run.pk))
        finally:
            await client.aclose()
        return snapshot.run.get("status", "") if snapshot else ""

    return asyncio.run(read())


# --- time limits ---------------------------------------------------------------------------


def test_it_cancels_a_run_at_its_time_limit_keeping_its_output(
    settings: SettingsWrapper, enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    settings.RUN_TIME_LIMIT_S = 1.0
    settings.RUN_HARD_TIME_LIMIT_S = 30
    run = start_run(simulated_pool(workspace, alice, [FAST, "sim-hang"]), alice)

    execution.run_execute(run_id=str(run.pk))

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "time limit of 1 s" in run.error and "partial output kept" in run.error
    assert run.candidates.get(member="m1").status == CandidateStatus.DONE
    hanging = run.candidates.get(member="m2")
    assert hanging.status == CandidateStatus.CANCELLED
    assert hanging.text, "what streamed before the limit is kept"


def test_it_gives_up_on_a_run_that_ignores_its_time_limit(
    settings: SettingsWrapper,
    enqueued: list[str],
    monkeypatch: pytest.MonkeyPatch,
    alice: User,
    workspace: Workspace,
) -> None:
    settings.RUN_TIME_LIMIT_S = 0.3
    settings.RUN_HARD_TIME_LIMIT_S = 1.5
    stopped = threading.Event()

    async def deaf_engine(*args: Any, cancel: asyncio.Event, **kwargs: Any) -> Any:
        # Hung somewhere that does not look at the cancel event (a stuck connection, say).
        try:
            await asyncio.sleep(120)
        except asyncio.CancelledError:
            stopped.set()
            raise

    monkeypatch.setattr(execution, "run_fusion", deaf_engine)
    run = start_run(simulated_pool(workspace, alice, [FAST, FAST]), alice)

    worker = _execute_in_thread(run)
    worker.join(timeout=30)

    assert not worker.is_alive(), "the task's thread is free again"
    assert stopped.wait(timeout=10), "the run's coroutine was cancelled on the engine loop"
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "hard time limit of 1.5 s" in run.error
    assert {c.status for c in run.candidates.all()} == {CandidateStatus.FAILED}
    assert _live_status(run) == "failed", "viewers are told"


# --- idempotency under redelivery ----------------------------------------------------------------


def test_it_does_not_run_a_finished_run_again(
    enqueued: list[str], provider_streams: list[str], alice: User, workspace: Workspace
) -> None:
    run = start_run(simulated_pool(workspace, alice, [FAST, FAST]), alice)
    execution.run_execute(run_id=str(run.pk))
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED
    asked, calls = len(provider_streams), run.calls.count()
    assert asked == 3  # two members and the judge

    execution.run_execute(run_id=str(run.pk))  # the same task, delivered again

    run.refresh_from_db()
    assert len(provider_streams) == asked, "no provider was asked anything"
    assert run.calls.count() == calls
    assert (run.status, run.attempts) == (RunStatus.FINISHED, 1)


def test_it_retries_a_redelivery_while_another_worker_is_alive(
    enqueued: list[str],
    provider_streams: list[str],
    monkeypatch: pytest.MonkeyPatch,
    alice: User,
    workspace: Workspace,
) -> None:
    run = start_run(simulated_pool(workspace, alice, [FAST]), alice)
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, attempts=1, heartbeat_at=timezone.now()
    )

    with pytest.raises(execution.RunBusy) as busy:
        execution.run_execute(run_id=str(run.pk))
    assert 0 < busy.value.retry_in_s <= 11
    # Through the task: Celery is asked to try again once the takeover delay has passed.
    countdowns: list[float] = []

    def retry(*, countdown: float) -> Retry:
        countdowns.append(countdown)
        return Retry()

    monkeypatch.setattr(tasks.run_execute, "retry", retry)
    with pytest.raises(Retry):
        tasks.run_execute(str(run.pk))
    assert len(countdowns) == 1 and 0 < countdowns[0] <= 11

    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 1)
    assert provider_streams == []


def test_it_enqueues_nothing_for_a_run_created_in_a_rolled_back_transaction(
    enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST])

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        start_run(pool, alice)
        raise Abort

    assert enqueued == [] and not Run.objects.exists()
    run = start_run(pool, alice)
    assert enqueued == [str(run.pk)], "after a commit, it is enqueued exactly once"


def test_it_keeps_a_run_whose_publish_failed_and_hands_it_over_later(
    enqueued: list[str], alice: User, workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = simulated_pool(workspace, alice, [FAST])

    def broker_down(run_id: str) -> None:
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.run_execute, "delay", broker_down)
    run = start_run(pool, alice)  # the person still gets their run, not an error
    run.refresh_from_db()
    assert (run.status, run.dispatched_at) == (RunStatus.QUEUED, None)

    monkeypatch.setattr(tasks.run_execute, "delay", lambda run_id: enqueued.append(run_id))
    assert services.runs_redispatch_lost(older_than_s=60) == []  # too young to call it lost
    assert services.runs_redispatch_lost(older_than_s=0) == [str(run.pk)]
    run.refresh_from_db()
    assert enqueued == [str(run.pk)] and run.dispatched_at is not None
    assert services.runs_redispatch_lost(older_than_s=0) == []  # the broker has it now


def test_it_leaves_a_dispatched_run_waiting_in_a_busy_queue_alone(
    enqueued: list[str], alice: User, workspace: Workspace, settings: SettingsWrapper
) -> None:
    settings.FUSION_REDISPATCH_AFTER_S = 0
    pool = simulated_pool(workspace, alice, [FAST])
    run = start_run(pool, alice)
    lost = start_run(pool, alice)
    Run.objects.filter(pk=lost.pk).update(dispatched_at=None)  # as if its publish had failed
    assert enqueued == [str(run.pk), str(lost.pk)]
    tasks.runs_reap()  # the periodic task: reaper and lost-run hand-over
    assert enqueued == [str(run.pk), str(lost.pk), str(lost.pk)], (
        "only the lost run is sent again; a run the broker holds is never sent twice"
    )


def test_it_sends_again_a_run_the_broker_took_long_ago_but_no_worker_claimed(
    enqueued: list[str], alice: User, workspace: Workspace, settings: SettingsWrapper
) -> None:
    """Redis restarted without persistence forgets every queued task; the runs stay queued."""
    settings.FUSION_QUEUED_RESEND_S = 300
    run = start_run(simulated_pool(workspace, alice, [FAST]), alice)
    assert services.runs_redispatch_lost(older_than_s=0) == []  # just sent: it is waiting
    sent_at = timezone.now() - timedelta(seconds=301)
    Run.objects.filter(pk=run.pk).update(dispatched_at=sent_at)
    assert services.runs_redispatch_lost(older_than_s=0) == [str(run.pk)]
    assert services.runs_redispatch_lost(older_than_s=0) == []  # once per 300 s, not per tick
    assert enqueued == [str(run.pk), str(run.pk)]


# --- the status machine against late writers ---------------------------------------------------


def _recorder(run: Run, attempt: int) -> tuple[RunRecorder, list[str]]:
    lost: list[str] = []
    recorder = RunRecorder(
        str(run.pk),
        positions={"m1": 0},
        providers={},
        executor=ENGINE_LOOP.db,
        attempt=attempt,
        on_lost=lambda: lost.append("lost"),
    )
    return recorder, lost


def _late_writes(recorder: RunRecorder) -> None:
    async def write() -> None:
        recorder.checkpoint({"m1/0": "text written after the run ended"}, 99)
        recorder.finalize({"status": RunStatus.FINISHED, "last_seq": 99, "winner": "m1"}, [])
        await recorder.drain()
        await recorder.aclose()

    ENGINE_LOOP.run(write())


def test_it_keeps_a_reaped_run_failed_when_its_worker_writes_late(
    settings: SettingsWrapper, enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    settings.FUSION_RESUME_ATTEMPTS = 0
    run = start_run(simulated_pool(workspace, alice, [FAST]), alice)
    claim = execution._claim(str(run.pk))
    assert claim is not None and claim.attempt == 1
    old = timezone.now() - timedelta(hours=1)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=old)
    assert services.runs_reap().failed == [str(run.pk)]

    recorder, lost = _recorder(run, claim.attempt)
    _late_writes(recorder)  # the worker wakes up: a checkpoint, then its final write

    run.refresh_from_db()
    assert run.status == RunStatus.FAILED and "stopped responding" in run.error
    assert run.heartbeat_at == old and run.winner == ""
    assert run.candidates.get().text == ""
    assert recorder.lost and lost == ["lost"], "the worker is told to stop"


def test_it_fences_a_worker_whose_run_another_worker_took_over(
    enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    run = start_run(simulated_pool(workspace, alice, [FAST]), alice)
    first = execution._claim(str(run.pk))
    # The first worker goes silent; a redelivery takes the run over.
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    second = execution._claim(str(run.pk))
    assert first is not None and second is not None
    assert (second.attempt, second.resumed) == (2, True)

    recorder, lost = _recorder(run, first.attempt)
    _late_writes(recorder)

    run.refresh_from_db()
    assert (run.status, run.attempts) == (RunStatus.RUNNING, 2), "the second worker's run"
    assert run.candidates.get().text == "" and lost == ["lost"]


def test_it_stops_a_running_run_the_reaper_failed_without_flipping_it_back(
    enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    run = start_run(simulated_pool(workspace, alice, [FAST, SLOW]), alice)
    worker = _execute_in_thread(run)
    _wait_until(
        lambda: run.candidates.filter(member="m2", status=CandidateStatus.STREAMING).exists(),
        "m2 streaming",
    )
    # The reaper decided this worker was dead (it is not: it was only silent for too long).
    assert services.run_fail_stalled(
        run_id=str(run.pk), attempt=1, reason="reaped", part_reason="worker stopped responding"
    )
    failed_at = Run.objects.get(pk=run.pk).heartbeat_at

    worker.join(timeout=30)
    assert not worker.is_alive(), "the worker noticed and stopped"
    run.refresh_from_db()
    assert (run.status, run.error) == (RunStatus.FAILED, "reaped")
    assert run.heartbeat_at == failed_at, "no checkpoint after the reaper"
    slow = run.candidates.get(member="m2")
    assert (slow.status, slow.error) == (CandidateStatus.FAILED, "worker stopped responding")
    assert _live_status(run) == "failed"


# --- the reaper resumes before it fails ----------------------------------------------------------


def _silent_running_run(pool: Any, user: User, **fields: Any) -> Run:
    run = start_run(pool, user)
    Run.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING,
        attempts=1,
        heartbeat_at=timezone.now() - timedelta(minutes=10),
        **fields,
    )
    return run


def test_it_re_enqueues_a_silent_run_to_resume_it(
    settings: SettingsWrapper,
    enqueued: list[str],
    provider_streams: list[str],
    alice: User,
    workspace: Workspace,
) -> None:
    settings.FUSION_RESUME_ATTEMPTS = 2
    pool = simulated_pool(workspace, alice, [FAST, FAST])
    run = _silent_running_run(pool, alice)
    run.candidates.filter(member="m1").update(status=CandidateStatus.DONE, text="kept answer")
    enqueued.clear()

    reaped = services.runs_reap()

    assert reaped.resumed == [str(run.pk)] and reaped.failed == []
    assert enqueued == [str(run.pk)]
    run.refresh_from_db()
    assert (run.status, run.resumes) == (RunStatus.RUNNING, 1)
    # Reaped again at once: it was just re-enqueued, so it is left to its new delivery.
    assert services.runs_reap().resumed == []

    execution.run_execute(run_id=enqueued[0])  # the re-enqueued task
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED and run.attempts == 2
    assert run.candidates.get(member="m1").text == "kept answer"
    assert provider_streams.count(FAST) == 1, "only the unfinished member was asked"


def test_it_takes_over_a_re_enqueued_run_without_waiting_for_the_takeover_delay(
    enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST])
    now = timezone.now()
    run = _silent_running_run(pool, alice)
    # A heartbeat young enough to look alive, but the reaper re-enqueued the run after it.
    Run.objects.filter(pk=run.pk).update(heartbeat_at=now - timedelta(seconds=2), requeued_at=now)
    claim = execution._claim(str(run.pk))
    assert claim is not None and claim.resumed and claim.attempt == 2


def test_it_fails_a_silent_run_once_its_resumptions_ran_out(
    settings: SettingsWrapper, enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    settings.FUSION_RESUME_ATTEMPTS = 2
    run = _silent_running_run(simulated_pool(workspace, alice, [FAST, FAST]), alice, resumes=2)
    run.candidates.filter(member="m1").update(status=CandidateStatus.DONE, text="kept answer")
    run.candidates.filter(member="m2").update(status=CandidateStatus.STREAMING, text="part")
    enqueued.clear()

    reaped = services.runs_reap()

    assert reaped.failed == [str(run.pk)] and enqueued == []
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert "2 resumptions on another worker did not finish it" in run.error
    m1, m2 = run.candidates.order_by("position")
    assert (m1.status, m1.text) == (CandidateStatus.DONE, "kept answer")
    assert (m2.status, m2.text) == (CandidateStatus.FAILED, "part")


# --- credentials ----------------------------------------------------------------------------------


def test_it_builds_endpoints_with_decrypted_keys_and_a_clear_failure_for_a_deleted_one(
    enqueued: list[str], alice: User, workspace: Workspace
) -> None:
    from workbench.keys.models import Scope
    from workbench.keys.services import credential_create
    from workbench.pools.services import pool_freeze

    keyed = credential_create(
        workspace=workspace, user=alice, provider="openai", label="OpenAI",
        scope=Scope.WORKSPACE, keys=["sk-LEAKCANARY-aaaaaaaaaaaaaaaa-A1B2"],
    )  # fmt: skip
    pool = simulated_pool(workspace, alice, [FAST])
    config = pool_freeze(pool)
    ref = f"cred:{keyed.pk}"
    config["spec"]["members"].append({**config["spec"]["members"][0], "id": "m2", "provider": ref})
    config["providers"][ref] = {"label": "OpenAI", "kind": "openai"}
    claim = execution.Claim(
        run_id="x", workspace_id=workspace.pk, config=config, prompt="p", system_prompt="",
        resumed=False, attempt=1, last_seq=0, completed={},
    )  # fmt: skip

    endpoints = execution._endpoints_for(claim, None)
    assert [k.label for k in endpoints[ref].keys] == ["…A1B2"]

    credential_delete(credential=keyed, user=alice)
    gone = execution._endpoints_for(claim, None)[ref]
    assert isinstance(gone.provider, execution.MissingProvider)
    assert gone.provider.name == "OpenAI"
