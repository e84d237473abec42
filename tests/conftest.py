"""Fixtures shared by every test package: the real stack for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from workbench.lib.stack import Stack, start_stack


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests last: Playwright's sync API leaves an event loop running in the main
    thread, which later async tests could not start their own loop beside."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None or
               "/e2e/" in str(item.path))  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def _close_engine_database_threads(django_db_blocker: object) -> Iterator[None]:
    """Runs executed in this process (eagerly) leave database threads with open connections;
    close them before the test database is dropped."""
    yield
    from workbench.runs.engine_loop import ENGINE_LOOP

    ENGINE_LOOP.close_database_connections()


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
