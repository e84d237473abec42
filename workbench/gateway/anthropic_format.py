"""The gateway's answers in the Anthropic Messages format.

Non-streaming: one ``message`` object. Streaming (server-sent events with named events), as
Anthropic sends it: ``message_start`` (the message with empty content), ``content_block_start``
(one text block, index 0), a ``content_block_delta`` (``text_delta``) per piece,
``content_block_stop``, ``message_delta`` with the ``stop_reason`` and the cumulative
``usage``, then ``message_stop``. Usage is only known once every sub-call of a run has ended,
so ``message_start`` reports zeros and ``message_delta`` the totals (input tokens included,
which the SDK takes over as cumulative).

Beyond the format, the body (or ``message_delta``) carries ``fusion``: the run behind it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.http import JsonResponse

from workbench.gateway.errors import GatewayError


def error_response(exc: GatewayError) -> JsonResponse:
    return exc.response(exc.anthropic_body())


def stop_reason(native: str | None) -> str:
    return "max_tokens" if native in ("length", "max_tokens") else "end_turn"


def _usage(outcome: dict[str, Any]) -> dict[str, int]:
    return {
        "input_tokens": outcome.get("input_tokens", 0),
        "output_tokens": outcome.get("output_tokens", 0),
    }


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n"


class AnthropicAnswer:
    """Frames one answer: the message id and model shared by all of its events."""

    error_response = staticmethod(error_response)

    def __init__(self, *, run_id: str, model: str, include_usage: bool = True) -> None:
        self.id = f"msg_{uuid.UUID(run_id).hex}"
        self.model = model

    def _message(self, content: list[dict[str, Any]], stop: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
        }

    def body(self, text: str, outcome: dict[str, Any], native_finish: str | None) -> dict[str, Any]:
        return {
            **self._message([{"type": "text", "text": text}], stop_reason(native_finish)),
            "usage": _usage(outcome),
            "fusion": outcome.get("fusion"),
        }

    def opening(self) -> list[str]:
        message = {**self._message([], None), "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [
            _event("message_start", {"message": message}),
            _event(
                "content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}
            ),
        ]

    def delta(self, text: str) -> str:
        return _event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": text}}
        )

    def closing(self, outcome: dict[str, Any], native_finish: str | None) -> list[str]:
        return [
            _event("content_block_stop", {"index": 0}),
            _event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop_reason(native_finish), "stop_sequence": None},
                    "usage": _usage(outcome),
                    "fusion": outcome.get("fusion"),
                },
            ),
            _event("message_stop", {}),
        ]

    def error_frame(self, exc: GatewayError) -> str:
        return f"event: error\ndata: {json.dumps(exc.anthropic_body())}\n\n"
