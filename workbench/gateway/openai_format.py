"""The gateway's answers in the OpenAI chat completions format.

Non-streaming: one ``chat.completion`` object. Streaming (server-sent events), as OpenAI sends
it: a first chunk with ``delta.role``, one chunk per piece of content, a chunk with an empty
delta and the ``finish_reason``, then — only with ``stream_options.include_usage`` — a chunk
whose ``choices`` is empty and whose ``usage`` covers the whole request (every other chunk then
carries ``"usage": null``), and finally ``data: [DONE]``. Every chunk repeats the same ``id``,
``object: "chat.completion.chunk"``, ``created`` and ``model``.

Beyond the format, the body (or the finish chunk) carries ``fusion``: the run behind the
answer (id, URL, candidates, verdict, cost).
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.http import JsonResponse

from workbench.gateway.errors import GatewayError


def error_response(exc: GatewayError) -> JsonResponse:
    return exc.response(exc.openai_body())


def finish_reason(native: str | None) -> str:
    return "length" if native in ("length", "max_tokens") else "stop"


def usage(outcome: dict[str, Any]) -> dict[str, int]:
    i, o = outcome.get("input_tokens", 0), outcome.get("output_tokens", 0)
    return {"prompt_tokens": i, "completion_tokens": o, "total_tokens": i + o}


class OpenAIAnswer:
    """Frames one answer: the ids and options shared by all of its chunks."""

    error_response = staticmethod(error_response)

    def __init__(self, *, run_id: str, model: str, include_usage: bool) -> None:
        self.id = f"chatcmpl-{run_id.replace('-', '')}"
        self.model = model
        self.include_usage = include_usage
        self.created = int(time.time())

    def body(self, text: str, outcome: dict[str, Any], native_finish: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish_reason(native_finish),
                }
            ],
            "usage": usage(outcome),
            "fusion": outcome.get("fusion"),
        }

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> str:
        data: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if self.include_usage:
            data["usage"] = None
        data.update(extra)
        return f"data: {json.dumps(data)}\n\n"

    def _choice(self, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]

    def opening(self) -> list[str]:
        return [self._chunk(self._choice({"role": "assistant", "content": ""}))]

    def delta(self, text: str) -> str:
        return self._chunk(self._choice({"content": text}))

    def closing(self, outcome: dict[str, Any], native_finish: str | None) -> list[str]:
        frames = [
            self._chunk(
                self._choice({}, finish_reason(native_finish)), fusion=outcome.get("fusion")
            )
        ]
        if self.include_usage:
            frames.append(self._chunk([], usage=usage(outcome)))
        frames.append("data: [DONE]\n\n")
        return frames

    def error_frame(self, exc: GatewayError) -> str:
        # What OpenAI itself sends when a stream fails after it started.
        return f"data: {json.dumps(exc.openai_body())}\n\n"
