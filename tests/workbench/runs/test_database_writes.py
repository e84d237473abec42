"""A run writes to the database in batches and at each candidate's end, never per token."""

from __future__ import annotations

import threading

import pytest
from django.db.backends.signals import connection_created

from tests.workbench.runs.helpers import simulated_pool, start_run
from workbench.celery import app as celery_app
from workbench.runs.models import RunStatus


class WriteCounter:
    """Counts INSERT/UPDATE/DELETE statements on every connection, in every thread."""

    def __init__(self) -> None:
        self.count = 0
        self.statements: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.lstrip().split(" ", 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}:
            with self.lock:
                self.count += 1
                self.statements.append(sql[:80])
        return execute(sql, params, many, context)

    def install(self, sender, connection, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if self not in connection.execute_wrappers:
            connection.execute_wrappers.append(self)


@pytest.mark.slow
def test_it_writes_a_2000_token_run_in_a_few_dozen_statements(
    transactional_db, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast@ttft=0,tps=4000,tokens=2000"], judge=None)
    counter = WriteCounter()
    connection_created.connect(counter.install)
    celery_app.conf.task_always_eager = True
    try:
        run = start_run(pool, alice)  # eager: executes right here, recorder thread included
    finally:
        celery_app.conf.task_always_eager = False
        connection_created.disconnect(counter.install)
    run.refresh_from_db()

    assert run.status in (RunStatus.FINISHED, RunStatus.FINISHED_WITHOUT_VERDICT), run.error
    candidate = run.candidates.get()
    assert candidate.output_tokens >= 2000
    print(f"database writes for a {candidate.output_tokens}-token run: {counter.count}")
    assert counter.count <= 12, "\n".join(counter.statements)
