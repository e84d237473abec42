"""The Celery app. Tasks are interfaces: ids in, one service call, nothing else."""

from __future__ import annotations

import gc
import os
from typing import Any

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "workbench.settings")


def _survive_broker_restarts() -> None:
    """Make a Redis channel of a closed connection fail with a connection error, not a crash.

    Without this a worker exits when Redis restarts while it runs a task (kombu 5.7, Celery
    5.7). On the lost connection Celery's consumer calls ``Connection.collect()`` then
    ``Connection.close()``. ``collect()`` closes the default channel first, but that close
    raises part-way — a BRPOP was in flight, and reading its reply from the dead socket fails
    — so the channel is left unclosed; ``collect()`` still detaches the transport
    (``transport.client = None``) and keeps pointing ``_default_channel`` at it.
    ``close()`` then closes that channel a second time: with the run task unacknowledged
    (``acks_late``), the close restores it, which lazily builds a new connection pool from
    ``self.connection.client`` — None by now — and raises ``AttributeError: 'NoneType' object
    has no attribute 'hostname'`` from ``_connparams``. That is not one of the transport's
    connection errors, so it escapes ``ignore_errors``, and Celery calls it unrecoverable and
    shuts the worker down (cf. celery/kombu#582, the same trace from another close path).

    A channel whose connection is gone cannot reach Redis; saying so with the transport's own
    ``ConnectionError`` lets every close path swallow it as designed, and the consumer
    reconnects. The message it could not restore is not lost: the task keeps running in this
    worker, and a copy still in Redis's unacked set is restored after the visibility timeout
    (``run_execute`` leaves a finished or live run alone).
    """
    from kombu.transport import redis as kombu_redis

    channel_class: Any = kombu_redis.Channel
    original = channel_class._connparams
    if getattr(original, "survives_broker_restarts", False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport is None or transport.client is None:
            raise kombu_redis.redis.exceptions.ConnectionError(
                "the broker connection of this channel was closed"
            )
        params: dict[str, Any] = original(self, asynchronous=asynchronous)
        return params

    _connparams.survives_broker_restarts = True  # type: ignore[attr-defined]
    channel_class._connparams = _connparams


_survive_broker_restarts()

app = Celery("workbench")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _freeze_start_up_heap(**_: Any) -> None:
    """Keep the ~50k objects made while starting out of every later garbage collection.

    They live as long as the process; without this, the first full collection lands in the
    middle of some run and stalls its streams for tens of milliseconds (the engine benchmark
    saw it as its p99).
    """
    gc.collect()
    gc.freeze()
