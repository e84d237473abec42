"""Getting events to the browsers watching a run: the channel-layer group of the run."""

from __future__ import annotations

import asyncio
import weakref

import redis.asyncio as aioredis
from channels.layers import get_channel_layer
from django.conf import settings

from workbench.runs.live import LiveStore, LiveWrite


def run_group(run_id: str) -> str:
    return f"run.{run_id}"


async def publish_events(run_id: str, events: list[str], seqs: list[int]) -> None:
    """Send already-encoded events to every consumer of the run (encoded once, not per client).

    The seqs travel beside the events so consumers can check order without decoding them.
    """
    layer = get_channel_layer()
    if layer is not None:
        await layer.group_send(
            run_group(run_id), {"type": "run.events", "events": events, "seqs": seqs}
        )


def redis_client() -> aioredis.Redis:
    """A client of its own, for a one-off use; the caller closes it."""
    return aioredis.Redis.from_url(settings.REDIS_URL)


_shared: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)


def shared_redis() -> aioredis.Redis:
    """The running loop's one pooled client, for long-lived loops (daphne's, the engine's):
    every websocket and every run shares its connections instead of opening its own. Never
    close it."""
    loop = asyncio.get_running_loop()
    client = _shared.get(loop)
    if client is None:
        # A blocking pool: at the connection limit a command waits for a free connection
        # rather than failing, however many runs or watchers the loop serves.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=settings.FUSION_REDIS_CONNECTIONS, timeout=20
        )
        client = _shared[loop] = aioredis.Redis(connection_pool=pool)
    return client


async def publish_terminal(run_id: str, *, last_seq: int, status: str, error: str) -> int:
    """End a run's live state from outside the worker (the reaper) and tell its viewers."""
    import json

    client = redis_client()
    try:
        store = LiveStore(client)
        snapshot = await store.snapshot(run_id)
        seq = max(last_seq, snapshot.seq if snapshot else 0) + 1
        run_state = {**(snapshot.run if snapshot else {}), "status": status, "error": error}
        await store.write(run_id, LiveWrite(seq=seq, run=run_state, expire=True))
        event = {"seq": seq, "run": run_id, "type": f"run.{status}", "error": error, "totals": {}}
        await publish_events(run_id, [json.dumps(event)], [seq])
        return seq
    finally:
        await client.aclose()
