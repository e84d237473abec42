"""Where runs execute inside a worker process: one long-lived event loop in a thread.

Celery cannot run ``async def`` tasks. Rather than ``asyncio.run`` per task (a new loop, new
connections and a new HTTP client every run), each worker process keeps one event loop in a
daemon thread and Celery's threads hand runs to it and wait. So one process streams many runs
at once (with ``--pool threads --concurrency N``), all of them sharing one pooled HTTP client,
and nothing made on one loop is ever used on another ("Event loop is closed" cannot happen).

Database writes go to a small shared pool of threads, so the number of database connections a
process holds stays bounded however many runs it streams.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection

from fusion.providers.transport import HttpClient

T = TypeVar("T")


class EngineLoop:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: HttpClient | None = None
        self._db: ThreadPoolExecutor | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            # A forked child inherits the object but not the thread: start anew in it.
            if self._loop is None or self._pid != os.getpid():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="engine-loop", daemon=True).start()
                self._loop, self._pid, self._client = loop, os.getpid(), None
                self._db = ThreadPoolExecutor(
                    max_workers=settings.FUSION_DB_THREADS, thread_name_prefix="run-db"
                )
            return self._loop

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the process's engine loop and wait for its result.

        After ``timeout`` seconds the caller stops waiting: the coroutine is cancelled on the
        loop and ``TimeoutError`` raised, so a hung run never holds the calling thread. (Celery
        enforces no time limit in the thread pool the workers use; this is the hard limit.)
        """
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    @property
    def db(self) -> ThreadPoolExecutor:
        self._ensure()
        assert self._db is not None
        return self._db

    def http_client(self) -> HttpClient:
        """The loop's pooled, SSRF-guarded client (call it on the engine loop)."""
        if self._client is None:
            from workbench.keys.ssrf import safe_provider_client

            self._client = safe_provider_client(
                max_connections=settings.FUSION_HTTP_MAX_CONNECTIONS
            )
        return self._client

    def on_each_database_thread(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` once in every database thread (on its own ``connection``)."""
        executor = self.db
        workers = settings.FUSION_DB_THREADS
        barrier = threading.Barrier(workers)

        def call() -> None:
            fn()
            # Hold each thread until all have taken one: every thread runs it exactly once.
            barrier.wait(timeout=5)

        for future in [executor.submit(call) for _ in range(workers)]:
            future.result()

    def close_database_connections(self) -> None:
        """Close the connection of every database thread (tests, before dropping the database)."""
        if self._db is not None:
            # ``connection`` is per thread: look it up in each database thread, not here.
            self.on_each_database_thread(lambda: connection.close())


ENGINE_LOOP = EngineLoop()
