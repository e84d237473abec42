"""OpenAI-compatible chat completions: OpenAI, OpenRouter, Groq, Together, DeepSeek, Mistral,
vLLM, Ollama, llama.cpp, LM Studio. ``base_url`` ends with the API root, e.g. ``…/v1``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from fusion.providers.base import Timeouts
from fusion.providers.classify import UpstreamError, load_object, stream_error
from fusion.providers.http import HttpCall, HttpProvider, StreamState, as_int
from fusion.providers.transport import HttpClient
from fusion.sse import SseEvent
from fusion.types import ApiKey, ChatRequest

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIProvider(HttpProvider):
    kind = "openai"
    default_base_url = OPENAI_BASE_URL

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None = None,
        client: HttpClient | httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
        max_tokens_field: str = "max_tokens",
        include_usage: bool = True,
        extra_body: Mapping[str, Any] | None = None,
    ) -> None:
        """``max_tokens_field``: OpenAI's reasoning models only accept
        ``max_completion_tokens``, while many compatible servers only know ``max_tokens``.
        ``include_usage``: off for old servers that reject ``stream_options``.
        """
        super().__init__(
            name=name, base_url=base_url, client=client, timeouts=timeouts, headers=headers
        )
        self.max_tokens_field = max_tokens_field
        self.include_usage = include_usage
        self.extra_body = dict(extra_body or {})

    def auth_headers(self, key: ApiKey | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key.secret}"} if key is not None else {}

    def stream_call(self, request: ChatRequest, key: ApiKey | None) -> HttpCall:
        body: dict[str, Any] = {
            "model": request.model,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "stream": True,
        }
        if self.include_usage:
            body["stream_options"] = {"include_usage": True}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.max_tokens is not None:
            body[self.max_tokens_field] = request.max_tokens
        body.update(self.extra_body)
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            **self.extra_headers,
            **self.auth_headers(key),
        }
        return HttpCall(f"{self.base_url}/chat/completions", headers, body)

    def on_event(self, event: SseEvent, state: StreamState) -> str | None:
        data = event.data
        if data == "[DONE]":
            state.done = True
            return None
        chunk = load_object(data)
        if chunk.get("error"):
            raise stream_error(chunk)
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            _read_usage(usage, state)
        choices = chunk.get("choices")
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            return None  # e.g. the usage-only last chunk, whose choices are empty
        choice = choices[0]
        finish = choice.get("finish_reason")
        if finish == "error":
            # OpenRouter ends a failed generation this way; the error object may be absent.
            raise UpstreamError("the upstream model failed mid-stream", permanent=False)
        if isinstance(finish, str) and finish:
            state.finish_reason = finish
        delta = choice.get("delta")
        text = delta.get("content") if isinstance(delta, dict) else None
        return text if isinstance(text, str) else None

    def finish(self, state: StreamState) -> str:
        if state.finish_reason is None and state.done:
            return "unknown"  # [DONE] is an explicit end even when the server named no reason
        return super().finish(state)

    def models_page(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        return f"{self.base_url}/models", {}

    def parse_models(self, payload: Any) -> tuple[list[str], str | None]:
        data = payload.get("data") if isinstance(payload, dict) else payload
        if not isinstance(data, list):
            raise UpstreamError("unexpected model list format", permanent=True)
        return [str(m["id"]) for m in data if isinstance(m, dict) and m.get("id")], None


def _read_usage(usage: dict[str, Any], state: StreamState) -> None:
    prompt, completion = as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens"))
    if prompt is not None:
        state.input_tokens = prompt
    if completion is not None:
        state.output_tokens = completion
    cost = usage.get("cost")  # OpenRouter: the charge in USD (credits)
    if isinstance(cost, int | float | str) and not isinstance(cost, bool):
        try:
            value = Decimal(str(cost))
        except InvalidOperation:
            return
        if value.is_finite() and value >= 0:
            state.reported_cost = value
