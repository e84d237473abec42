"""How a running run learns it was cancelled: one watcher per worker event loop.

Cancelling sets a Redis key (``services.run_cancel``); the worker cannot wait on the database
every 100 ms. Rather than every run polling its own key, one task per loop reads the keys of
all the runs it is executing in a single MGET every ``POLL_S`` — a few commands a second
however many runs stream — and sets each cancelled run's event. It also ends runs that
outlive their time limit.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from workbench.runs.publish import shared_redis
from workbench.runs.services import cancel_key

log = logging.getLogger(__name__)

POLL_S = 0.1
TIME_LIMIT_MARK = "time limit"  # who "cancelled": the time limit, not a person


@dataclass
class _Watched:
    event: asyncio.Event
    deadline: float
    timed_out: bool = False


class CancelWatcher:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self.runs: dict[str, _Watched] = {}
        self.task: asyncio.Task[None] | None = None

    def watch(self, run_id: str, event: asyncio.Event, limit_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + limit_s
        self.runs[run_id] = _Watched(event, deadline)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._poll(), name="cancel watcher")

    def forget(self, run_id: str) -> bool:
        """Stop watching; True when the run was ended by its time limit."""
        watched = self.runs.pop(run_id, None)
        return watched is not None and watched.timed_out

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        while self.runs:
            run_ids = list(self.runs)
            try:
                flags = await self.redis.mget([cancel_key(r) for r in run_ids])
            except RedisError:  # Redis away for a moment: the runs go on; look again later
                log.warning("cannot read cancel flags from Redis")
                flags = [None] * len(run_ids)
            now = loop.time()
            for run_id, flag in zip(run_ids, flags, strict=True):
                watched = self.runs.get(run_id)
                if watched is None or watched.event.is_set():
                    continue
                if flag:
                    watched.event.set()
                elif now > watched.deadline:
                    watched.timed_out = True
                    watched.event.set()
            await asyncio.sleep(POLL_S)


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, CancelWatcher] = (
    weakref.WeakKeyDictionary()
)


def cancel_watcher() -> CancelWatcher:
    """The running loop's watcher."""
    loop = asyncio.get_running_loop()
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = CancelWatcher(shared_redis())
    return watcher
