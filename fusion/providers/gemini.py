"""Google Gemini API: ``POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse``.

The key travels only in the ``x-goog-api-key`` header: a ``?key=`` URL ends up in exception
text and access logs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import httpx

from fusion.providers.base import Timeouts
from fusion.providers.classify import UpstreamError, load_object, stream_error
from fusion.providers.http import HttpCall, HttpProvider, StreamState, as_int, split_system
from fusion.providers.transport import HttpClient
from fusion.sse import SseEvent
from fusion.types import ApiKey, ChatRequest

GEMINI_BASE_URL = "https://generativelanguage.googleapis.com"

_FINISH_REASONS = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}


class GeminiProvider(HttpProvider):
    kind = "gemini"
    default_base_url = GEMINI_BASE_URL

    def __init__(
        self,
        *,
        name: str,
        base_url: str | None = None,
        client: HttpClient | httpx.AsyncClient | None = None,
        timeouts: Timeouts | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            name=name, base_url=base_url, client=client, timeouts=timeouts, headers=headers
        )
        self.base_url = self.base_url.removesuffix("/v1beta")

    def auth_headers(self, key: ApiKey | None) -> dict[str, str]:
        return {"x-goog-api-key": key.secret} if key is not None else {}

    def stream_call(self, request: ChatRequest, key: ApiKey | None) -> HttpCall:
        system, turns = split_system(request.messages)
        body: dict[str, Any] = {
            "contents": [
                {"role": "model" if role == "assistant" else "user", "parts": [{"text": text}]}
                for role, text in turns
            ]
        }
        if system is not None:
            body["systemInstruction"] = {"parts": [{"text": system}]}
        config: dict[str, Any] = {}
        if request.temperature is not None:
            config["temperature"] = request.temperature
        if request.max_tokens is not None:
            config["maxOutputTokens"] = request.max_tokens
        if config:
            body["generationConfig"] = config
        model = quote(request.model.removeprefix("models/"), safe="")
        headers = {
            "content-type": "application/json",
            "accept": "text/event-stream",
            **self.extra_headers,
            **self.auth_headers(key),
        }
        url = f"{self.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"
        return HttpCall(url, headers, body)

    def on_event(self, event: SseEvent, state: StreamState) -> str | None:
        chunk = load_object(event.data)
        if chunk.get("error"):
            raise stream_error(chunk)
        usage = chunk.get("usageMetadata")
        if isinstance(usage, dict):
            _read_usage(usage, state)
        candidates = chunk.get("candidates")
        if not candidates or not isinstance(candidates, list):
            feedback = chunk.get("promptFeedback")
            reason = feedback.get("blockReason") if isinstance(feedback, dict) else None
            if reason:
                raise UpstreamError(f"prompt blocked: {reason}", permanent=True)
            return None
        candidate = candidates[0]
        if not isinstance(candidate, dict):
            return None
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason:
            state.finish_reason = _FINISH_REASONS.get(reason, reason.lower())
        content = candidate.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        if not isinstance(parts, list):
            return None
        # Parts flagged "thought" are the model's reasoning summary, not its answer.
        texts = [
            p["text"]
            for p in parts
            if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")
        ]
        return "".join(texts) or None

    # Gemini has no end marker: a stream is whole when it ends after a finishReason, which
    # the inherited finish() checks.

    def models_page(self, cursor: str | None) -> tuple[str, dict[str, str]]:
        params = {"pageSize": "1000"}
        if cursor:
            params["pageToken"] = cursor
        return f"{self.base_url}/v1beta/models", params

    def parse_models(self, payload: Any) -> tuple[list[str], str | None]:
        models = payload.get("models") if isinstance(payload, dict) else None
        if not isinstance(models, list):
            raise UpstreamError("unexpected model list format", permanent=True)
        ids = []
        for m in models:
            if not isinstance(m, dict) or not m.get("name"):
                continue
            methods = m.get("supportedGenerationMethods")
            if isinstance(methods, list) and "generateContent" not in methods:
                continue  # embedding and other models cannot chat
            ids.append(str(m["name"]).removeprefix("models/"))
        token = payload.get("nextPageToken")
        return ids, str(token) if token else None


def _read_usage(usage: dict[str, Any], state: StreamState) -> None:
    prompt = as_int(usage.get("promptTokenCount"))
    if prompt is not None:
        state.input_tokens = prompt
    answer = as_int(usage.get("candidatesTokenCount"))
    if answer is not None:
        # Thinking tokens are billed as output.
        state.output_tokens = answer + (as_int(usage.get("thoughtsTokenCount")) or 0)
