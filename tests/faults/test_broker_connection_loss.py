"""The Celery worker's broker connection lost with a task unacknowledged, in-process.

This replays what Celery's consumer does when Redis goes away under a running ``acks_late``
task (``Connection.collect()`` then ``Connection.close()``) on a real kombu connection to an
embedded Redis. The close used to raise ``AttributeError: 'NoneType' object has no attribute
'hostname'``, which Celery treats as unrecoverable: the worker exited
(``workbench.celery._survive_broker_restarts`` explains why). The end-to-end version, with a
worker, daphne and websocket clients, is ``test_redis_restart.py``.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Consumer, Exchange, Queue

from workbench.lib.embedded_redis import start_embedded_redis


@pytest.fixture
def broker() -> Iterator[tuple[Connection, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="fw-kombu-"))  # unix socket paths are short
    redis = start_embedded_redis(folder / "r.sock")
    connection = Connection(f"redis+socket://{folder / 'r.sock'}")
    try:
        yield connection, redis
    finally:
        redis.kill()
        redis.wait()
        shutil.rmtree(folder, ignore_errors=True)


def test_it_closes_a_lost_broker_connection_with_a_task_unacknowledged(
    broker: tuple[Connection, Any],
) -> None:
    connection, redis = broker
    got: list[Any] = []
    queues = [Queue(name, Exchange(name), name) for name in ("tasks", "control")]
    with connection.Producer() as producer:
        for queue in queues:
            producer.publish({"run": queue.name}, exchange=queue.exchange,
                             routing_key=queue.name, declare=[queue])  # fmt: skip
    # Two channels, as a worker has, the default one first, each holding a delivered message
    # it has not acknowledged (acks_late) and then a BRPOP in flight.
    Consumer(connection.default_channel, [queues[0]], callbacks=[lambda _b, m: got.append(m)],
             auto_declare=False).consume()  # fmt: skip
    Consumer(connection.channel(), [queues[1]], callbacks=[lambda _b, m: got.append(m)],
             auto_declare=False).consume()  # fmt: skip
    while len(got) < 2:
        connection.drain_events(timeout=5)
    with pytest.raises(socket.timeout):
        connection.drain_events(timeout=0.1)
    channels = list(connection.transport.channels)
    assert len(channels) == 2 and all(channel._in_poll for channel in channels)

    redis.kill()
    redis.wait()
    # What Celery's consumer does on the lost connection, before it reconnects: each step must
    # end, at worst, in one of the transport's connection errors (which Celery swallows).
    connection.collect(socket_timeout=1)
    with contextlib.suppress(*connection.connection_errors):
        connection.close()

    # A channel whose close failed still holds its message; kombu would try to restore it at
    # exit, into a Redis this test has removed.
    for channel in channels:
        channel.qos._on_collect.cancel()
