"""Fixtures shared by every test package: the real stack for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from workbench.lib.stack import Stack, start_stack


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API leaves an event loop running in the main
    thread, which later async tests could not start their own loop beside."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None or
               "/e2e/" in str(item.path))  # fmt: skip


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> Iterator[None]:
    """The test database, as pytest-django makes it. Before it is dropped, close what this
    process's threads left open (the engine's database threads, asgiref's executor threads
    of the async gateway views): PostgreSQL will not drop a database still in use."""
    yield
    from django.db import connection

    from workbench.runs.engine_loop import ENGINE_LOOP

    ENGINE_LOOP.close_database_connections()
    if connection.vendor == "postgresql":
        with django_db_blocker.unblock(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )


@pytest.fixture(scope="session")
def _stack_processes(
    django_db_setup: None, django_db_blocker: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    stack = start_stack(tmp_path_factory.mktemp("stack"))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def live_stack(_stack_processes: Stack, transactional_db: None) -> Stack:
    """daphne + a Celery worker against the test database; the test's data must be committed."""
    for worker in _stack_processes.extra_workers:
        worker.stop()
    _stack_processes.extra_workers.clear()
    if _stack_processes.worker.process.poll() is not None:  # a test killed it
        from workbench.lib.stack import start_worker

        _stack_processes.worker = start_worker(_stack_processes.log_dir, "main")
    return _stack_processes
