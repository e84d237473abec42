"""Anthropic Messages API, streamed: ``POST {base}/v1/messages`` with ``stream: true``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from fusion.providers.base import Timeouts
from fusion.providers.classify import UpstreamError, load_object, stream_error
from fusion.providers.http import HttpCall, HttpProvider, StreamState, as_int, split_system
from fusion.providers.transport import HttpClient
from fusion.sse import SseEvent
from fusion.tokens import DEFAULT_MAX_TOKENS
from fusion.types import ApiKey, ChatRequest

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"

# Anthropic's stop reasons in the vocabulary the rest of the engine uses (OpenAI's).
_STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


class AnthropicProvider(HttpProvider):
    kind = "anthropic"
    default_base_url = ANTHROPIC_BASE_URL

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None = None,
        client: HttpClient | httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        default_max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        super().__init__(
            name=name, base_url=base_url, client=client, timeouts=timeouts, headers=headers
        )
        self.base_url = self.base_url.removesuffix("/v1")
        self.default_max_tokens = default_max_tokens

    def auth_headers(self, key: ApiKey | None) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if key is not None:
            headers["x-api-key"] = key.secret
        return headers

    def stream_call(self, request: ChatRequest, key: ApiKey | None) -> HttpCall:
        system, turns = split_system(request.messages)
        body: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens or self.default_max_tokens,
            "messages": [{"role": role, "content": text} for role, text in turns],
            "stream": True,
        }
        if system is not None:
            body["system"] = system
        if request.temperature is not None:
            body["temperature"] = request.temperature
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            **self.extra_headers,
            **self.auth_headers(key),
        }
        return HttpCall(f"{self.base_url}/v1/messages", headers, body)

    def on_event(self, event: SseEvent, state: StreamState) -> str | None:
        payload = load_object(event.data)
        kind = payload.get("type") or event.event
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta":
                text = delta.get("text")
                return text if isinstance(text, str) else None
            return None  # thinking and tool-input deltas are not answer text
        if kind == "message_start":
            message = payload.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            if isinstance(usage, dict):
                _read_usage(usage, state)
        elif kind == "content_block_start":
            block = payload.get("content_block")
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                return text if isinstance(text, str) and text else None
        elif kind == "message_delta":
            delta = payload.get("delta")
            reason = delta.get("stop_reason") if isinstance(delta, dict) else None
            if isinstance(reason, str) and reason:
                state.finish_reason = _STOP_REASONS.get(reason, reason)
            usage = payload.get("usage")
            if isinstance(usage, dict):
                _read_usage(usage, state)
        elif kind == "message_stop":
            state.done = True
        elif kind == "error":
            raise stream_error(payload)
        # "ping", "content_block_stop" and event types added later are ignored, as Anthropic
        # asks clients to do.
        return None

    def finish(self, state: StreamState) -> str:
        if state.finish_reason is None and state.done:
            return "unknown"
        if not state.done:
            # message_stop is Anthropic's end marker; a stop_reason alone does not prove the
            # stream was whole.
            state.finish_reason = None
        return super().finish(state)

    def models_page(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        params = {"limit": "1000"}
        if cursor:
            params["after_id"] = cursor
        return f"{self.base_url}/v1/models", params

    def parse_models(self, payload: Any) -> tuple[list[str], str | None]:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list):
            raise UpstreamError("unexpected model list format", permanent=True)
        ids = [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")]
        more = payload.get("has_more") and payload.get("last_id")
        return ids, str(payload["last_id"]) if more else None


def _read_usage(usage: dict[str, Any], state: StreamState) -> None:
    # Counts are cumulative; cache reads and writes are input too (priced differently, but
    # counting them keeps the estimate on the safe side).
    inputs = [as_int(usage.get(k)) for k in ("input_tokens", "cache_creation_input_tokens")]
    inputs.append(as_int(usage.get("cache_read_input_tokens")))
    if inputs[0] is not None:
        state.input_tokens = sum(n for n in inputs if n is not None)
    output = as_int(usage.get("output_tokens"))
    if output is not None:
        state.output_tokens = output
