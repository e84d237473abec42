"""A run writes to the database in batches and at each candidate's end, never per token.

Counted twice: by the recorder's own counter, and by the statements the database connections
actually executed — those of the worker's database threads (the recorder's writes) and of the
thread that claims the run — so a count of zero (wrappers on the wrong connections) fails.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import connection

from tests.workbench.runs.helpers import simulated_pool, start_run
from workbench.runs import execution, tasks
from workbench.runs.engine_loop import ENGINE_LOOP
from workbench.runs.models import RunStatus
from workbench.runs.recorder import RunRecorder

WRITES = ("INSERT", "UPDATE", "DELETE")


class StatementCounter:
    """Counts the write statements executed on the connections it is installed on, per thread."""

    def __init__(self) -> None:
        self.writes: dict[str, list[str]] = {}
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().split(" ", 1)[0].upper() in WRITES:
            with self.lock:
                self.writes.setdefault(threading.current_thread().name, []).append(sql[:90])
        return execute(sql, params, many, context)

    def count(self, prefix: str = "") -> int:
        return sum(len(s) for name, s in self.writes.items() if name.startswith(prefix))


@contextmanager
def counting() -> Iterator[StatementCounter]:
    """A ``StatementCounter`` on every database thread of the engine loop and on this thread
    (which claims the run), for the duration."""
    counter = StatementCounter()
    ENGINE_LOOP.on_each_database_thread(lambda: connection.execute_wrappers.append(counter))
    try:
        with connection.execute_wrapper(counter):
            yield counter
    finally:
        ENGINE_LOOP.on_each_database_thread(lambda: connection.execute_wrappers.remove(counter))


@pytest.fixture
def recorders(monkeypatch: pytest.MonkeyPatch) -> list[RunRecorder]:
    made: list[RunRecorder] = []

    class Kept(RunRecorder):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(execution, "RunRecorder", Kept)
    return made


@pytest.mark.slow
def test_it_writes_a_2000_token_run_in_a_dozen_statements(
    transactional_db: None,
    monkeypatch: pytest.MonkeyPatch,
    recorders: list[RunRecorder],
    alice: Any,
    workspace: Any,
) -> None:
    monkeypatch.setattr(tasks.run_execute, "delay", lambda run_id: None)
    pool = simulated_pool(workspace, alice, ["sim-fast@ttft=0,tps=4000,tokens=2000"], judge=None)
    run = start_run(pool, alice)

    with counting() as counted:
        execution.run_execute(run_id=str(run.pk))  # what the Celery task does
    run.refresh_from_db()

    assert run.status in (RunStatus.FINISHED, RunStatus.FINISHED_WITHOUT_VERDICT), run.error
    candidate = run.candidates.get()
    assert candidate.output_tokens >= 2000
    (recorder,) = recorders
    in_db_threads = counted.count("run-db")
    statements = "\n".join(f"{t}: {s}" for t, ss in counted.writes.items() for s in ss)
    print(f"{candidate.output_tokens}-token run: {counted.count()} write statements\n{statements}")
    # Started, finished, the call record, a checkpoint, the outcome: not one per token.
    assert 4 <= recorder.writes <= 10, statements
    assert in_db_threads == recorder.writes, "the counter counts what was executed"
    assert 1 <= counted.count() - in_db_threads <= 2, "claiming the run: a write or two"
