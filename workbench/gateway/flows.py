"""The two ways a gateway request is served, both as an async stream of answer text with an
``outcome`` (the run as the gateway reports it) once the stream ends:

- ``FusionFlow``: a normal run of a pool, executed by a worker; followed here through the run's
  channel-layer group (with the live state in Redis to cover what was published before we
  subscribed, and a database check every second in case a message was dropped). Best-of answers
  are known only at the verdict and come as one piece at the end; merge and debate stream the
  judge's synthesis as it is written.
- ``PassthroughFlow`` (``passthrough``): one model through the engine's ``Caller``, in this
  process, streamed straight through and recorded as a one-member run.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from workbench.gateway import services
from workbench.gateway.errors import GatewayError
from workbench.gateway.passthrough import PassthroughFlow
from workbench.runs.live import LiveStore
from workbench.runs.publish import redis_client, run_group
from workbench.tokens.models import ApiToken

TERMINAL_EVENTS = {"run.finished", "run.failed", "run.cancelled"}
SYNTHESIS = "judge/synthesis"
DB_CHECK_S = 1.0
# The worker publishes the terminal event before its final database write lands.
SETTLE_TIMEOUT_S = 10.0


class FusionFlow:
    def __init__(self, *, token: ApiToken, run_id: str, base_url: str) -> None:
        self.token = token
        self.run_id = run_id
        self.base_url = base_url
        self.outcome: dict[str, Any] | None = None
        # The fused answer is whole (a winner or a synthesis), whatever its members did.
        self.finish_reason: str | None = "stop"

    def start(self) -> None:
        """Nothing to start: a worker executes the run."""

    async def deltas(self) -> AsyncIterator[str]:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        group = run_group(self.run_id)
        await layer.group_add(group, channel)
        sent = ""
        try:
            redis = redis_client()
            try:
                snapshot = await LiveStore(redis).snapshot(self.run_id)
            finally:
                await redis.aclose()
            seen = snapshot.seq if snapshot else 0
            if snapshot is not None and SYNTHESIS in snapshot.parts:
                sent = snapshot.parts[SYNTHESIS].get("text", "")
                if sent:
                    yield sent
            ended = snapshot is not None and snapshot.run.get("status") in (
                "finished", "finished_without_verdict", "failed", "cancelled"
            )  # fmt: skip
            while not ended:
                try:
                    message = await asyncio.wait_for(layer.receive(channel), DB_CHECK_S)
                except TimeoutError:
                    ended = await self._ended()
                    continue
                for raw, seq in zip(message["events"], message["seqs"], strict=False):
                    if seq <= seen:
                        continue
                    seen = seq
                    event = json.loads(raw)
                    kind = event["type"]
                    if (
                        kind == "judge.started"
                        and f"{event['judge']}/{event['phase']}" == SYNTHESIS
                    ):
                        sent = ""  # a retried synthesis starts over; nothing streamed is undone
                    elif (
                        kind == "judge.delta" and f"{event['judge']}/{event['phase']}" == SYNTHESIS
                    ):
                        sent += event["text"]
                        yield event["text"]
                    elif kind in TERMINAL_EVENTS:
                        ended = True
        finally:
            await layer.group_discard(group, channel)
        self.outcome = await self._settled()
        answer = self.outcome["answer"]
        if answer.startswith(sent) and len(answer) > len(sent):
            yield answer[len(sent) :]
        elif not sent and answer:
            yield answer

    async def _ended(self) -> bool:
        status = await sync_to_async(services.run_status)(self.run_id)
        return status in ("finished", "finished_without_verdict", "failed", "cancelled")

    async def _settled(self) -> dict[str, Any]:
        deadline = time.monotonic() + SETTLE_TIMEOUT_S
        while not await self._ended() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        outcome = await sync_to_async(services.run_outcome)(self.run_id, self.base_url)
        if outcome["status"] in ("failed", "cancelled"):
            raise GatewayError(
                502,
                f"The fusion run {outcome['status']}: {outcome['error'] or 'every member failed'}",
                code=f"run_{outcome['status']}",
            )
        return outcome

    async def cancel(self) -> None:
        await sync_to_async(services.run_cancel_for)(run_id=self.run_id, token=self.token)


Flow = FusionFlow | PassthroughFlow
