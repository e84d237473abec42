"""The two ways a gateway request is served, both as an async stream of answer text:

- ``FusionFlow``: a normal run of a pool, executed by a worker; followed here through the run's
  channel-layer group (with the live state in Redis to cover what was published before we
  subscribed, and a database check every second in case a message was dropped). Best-of answers
  are known only at the verdict and come as one piece at the end; merge and debate stream the
  judge's synthesis as it is written.
- ``SingleFlow``: one call through the engine's provider for a credential, in this process,
  streamed straight through and recorded as a one-member run when it ends.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from fusion.costs import cost_for
from fusion.errors import ProviderError
from fusion.redact import redact
from fusion.tokens import estimate_prompt_tokens, estimate_tokens
from fusion.types import ChatRequest, Message, StreamEnd, TextDelta, Usage
from workbench.gateway import services
from workbench.gateway.errors import GatewayError
from workbench.keys.services import credential_endpoint
from workbench.keys.ssrf import safe_async_client
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


class SingleFlow:
    def __init__(
        self,
        *,
        token: ApiToken,
        call: services.SingleCall,
        model: str,
        messages: list[Message],
        temperature: float | None,
        max_tokens: int | None,
        base_url: str,
    ) -> None:
        self.token = token
        self.call = call
        self.run_id = call.run_id
        self.request = ChatRequest(
            model=model, messages=tuple(messages), temperature=temperature, max_tokens=max_tokens
        )
        self.base_url = base_url
        self.outcome: dict[str, Any] | None = None
        self.finish_reason = "stop"
        self._closed = False
        self._text: list[str] = []
        self._started = time.monotonic()
        self._ttft: float | None = None
        self._key_label = ""
        self._attempts = 0

    async def deltas(self) -> AsyncIterator[str]:
        credential = await sync_to_async(services.single_endpoint_credential)(self.call)
        end: StreamEnd | None = None
        async with safe_async_client() as client:
            # Decrypts the keys: in memory only, for this call.
            endpoint = await sync_to_async(credential_endpoint)(credential, client=client)
            keys = list(endpoint.keys) or [None]
            secrets = [k.secret for k in endpoint.keys]
            for index, key in enumerate(keys):
                self._attempts += 1
                self._key_label = key.label if key is not None else ""
                try:
                    async for item in endpoint.provider.stream(self.request, key):
                        if isinstance(item, TextDelta):
                            if self._ttft is None:
                                self._ttft = (time.monotonic() - self._started) * 1000
                            self._text.append(item.text)
                            yield item.text
                        elif isinstance(item, StreamEnd):
                            end = item
                    break
                except ProviderError as exc:
                    # Another key may help with a rate limit or an outage, before any text only.
                    if self._text or exc.permanent or index == len(keys) - 1:
                        message = redact(str(exc), secrets)
                        await self._close("failed", None, message)
                        raise GatewayError(
                            _status_of(exc), message, code="upstream_error"
                        ) from None
        self.finish_reason = end.finish_reason if end is not None else "stop"
        await self._close("ok", end.usage if end is not None else None, "")
        self.outcome = await sync_to_async(services.run_outcome)(self.run_id, self.base_url)

    async def _close(self, status: str, usage: Usage | None, error: str) -> None:
        if self._closed:
            return
        self._closed = True
        text = "".join(self._text)
        if usage is None:
            usage = Usage(
                input_tokens=estimate_prompt_tokens(self.request.messages),
                output_tokens=estimate_tokens(text) if text else 0,
                estimated=True,
            )
        result = services.SingleResult(
            status=status,
            model=self.request.model,
            text=text,
            finish_reason=self.finish_reason if status == "ok" else "",
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            estimated=usage.estimated,
            cost=cost_for(usage, self.request.model, self.call.prices),
            ttft_ms=self._ttft,
            latency_ms=(time.monotonic() - self._started) * 1000,
            key_label=self._key_label,
            attempts=self._attempts,
            error=error,
        )
        await sync_to_async(services.single_close)(call=self.call, result=result)

    async def cancel(self) -> None:
        await self._close("cancelled", None, "The client disconnected.")


def _status_of(exc: ProviderError) -> int:
    """The upstream's complaint about the request is the caller's (400, 404, 429); anything
    about our credential or the provider itself is a bad gateway."""
    if exc.status in (400, 404, 413, 422, 429):
        return 404 if exc.status == 404 else exc.status
    return 502


Flow = FusionFlow | SingleFlow
