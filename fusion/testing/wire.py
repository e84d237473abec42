"""The three wire formats as the loopback upstream writes them (payloads, not framing)."""

from __future__ import annotations

from typing import Any

Payload = tuple[str | None, Any]  # (SSE event name or None, JSON-able payload or raw string)

_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_OPENAI_CODES = {
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


class OpenAIWire:
    name = "openai"
    line_end = "\n"
    stop, length = "stop", "length"

    def preamble(self, model: str, input_tokens: int | None) -> list[Payload]:
        return [(None, self._chunk(model, {"role": "assistant", "content": ""}, None))]

    def token(self, model: str, text: str) -> Payload:
        return None, self._chunk(model, {"content": text}, None)

    def final(
        self, model: str, finish: str, usage: tuple[int, int] | None, cost: float | None
    ) -> list[Payload]:
        out: list[Payload] = [(None, self._chunk(model, {}, finish))]
        if usage is not None or cost is not None:
            body: dict[str, Any] = {}
            if usage is not None:
                body = {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": sum(usage),
                }
            if cost is not None:
                body["cost"] = cost
            chunk = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "model": model}
            out.append((None, {**chunk, "choices": [], "usage": body}))
        out.append((None, "[DONE]"))
        return out

    def stream_error(self, model: str, status: int, message: str) -> Payload:
        # OpenRouter's shape: the error object plus a choice finishing with "error".
        chunk = self._chunk(model, {"content": ""}, "error")
        return None, {**chunk, "error": {"code": status, "message": message}}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind, code = _OPENAI_CODES.get(status, ("server_error" if status >= 500 else "", None))
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def models(self, names: list[str]) -> dict[str, Any]:
        data = [{"id": n, "object": "model", "created": 0, "owned_by": "upstream"} for n in names]
        return {"object": "list", "data": data}

    @staticmethod
    def _chunk(model: str, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-up",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }


class AnthropicWire:
    name = "anthropic"
    line_end = "\n"
    stop, length = "end_turn", "max_tokens"

    def preamble(self, model: str, input_tokens: int | None) -> list[Payload]:
        message: dict[str, Any] = {
            "id": "msg_up",
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": 1},
        }
        if input_tokens is None:
            del message["usage"]
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        return [
            ("message_start", {"type": "message_start", "message": message}),
            ("content_block_start", block),
            ("ping", {"type": "ping"}),
        ]

    def token(self, model: str, text: str) -> Payload:
        delta = {"type": "text_delta", "text": text}
        return "content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}

    def final(
        self, model: str, finish: str, usage: tuple[int, int] | None, cost: float | None
    ) -> list[Payload]:
        delta: dict[str, Any] = {
            "type": "message_delta",
            "delta": {"stop_reason": finish, "stop_sequence": None},
        }
        if usage is not None:
            delta["usage"] = {"output_tokens": usage[1]}
        return [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ("message_delta", delta),
            ("message_stop", {"type": "message_stop"}),
        ]

    def stream_error(self, model: str, status: int, message: str) -> Payload:
        return "error", self.error_body(status, message)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        kind = _ANTHROPIC_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def models(self, names: list[str]) -> dict[str, Any]:
        data = [
            {"id": n, "type": "model", "display_name": n, "created_at": "2025-01-01T00:00:00Z"}
            for n in names
        ]
        return {
            "data": data,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }


class GeminiWire:
    name = "gemini"
    line_end = "\r\n"  # what Google actually sends
    stop, length = "STOP", "MAX_TOKENS"

    def preamble(self, model: str, input_tokens: int | None) -> list[Payload]:
        return []

    def token(self, model: str, text: str) -> Payload:
        candidate = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
        return None, {"candidates": [candidate], "modelVersion": model}

    def final(
        self, model: str, finish: str, usage: tuple[int, int] | None, cost: float | None
    ) -> list[Payload]:
        candidate = {
            "content": {"parts": [{"text": ""}], "role": "model"},
            "finishReason": finish,
            "index": 0,
        }
        chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model}
        if usage is not None:
            chunk["usageMetadata"] = {
                "promptTokenCount": usage[0],
                "candidatesTokenCount": usage[1],
                "totalTokenCount": sum(usage),
            }
        return [(None, chunk)]

    def stream_error(self, model: str, status: int, message: str) -> Payload:
        return None, self.error_body(status, message)

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        word = _GOOGLE_STATUSES.get(status, "INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
        return {"error": {"code": status, "message": message, "status": word}}

    def models(self, names: list[str]) -> dict[str, Any]:
        chat = [
            {"name": f"models/{n}", "supportedGenerationMethods": ["generateContent"]}
            for n in names
        ]
        embed = {
            "name": "models/text-embedding-004",
            "supportedGenerationMethods": ["embedContent"],
        }
        return {"models": [*chat, embed]}


Wire = OpenAIWire | AnthropicWire | GeminiWire
