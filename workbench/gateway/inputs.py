"""Parsing the request bodies of both wire formats into one ``ChatInput``.

Beyond each format's own fields, both accept ``fallbacks``: model names to try, in order, when
a single model (``<credential>/<model>``) fails before its first token, on the same credential
(``"gpt-4o-mini"`` or ``"<credential>/gpt-4o-mini"``). Pools have their own fallbacks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fusion.types import Message
from workbench.gateway.errors import GatewayError
from workbench.pools.inputs import MAX_TOKENS

MAX_BODY_BYTES = 2_000_000


@dataclass(frozen=True)
class ChatInput:
    model: str
    messages: list[Message]
    stream: bool
    temperature: float | None
    max_tokens: int | None
    include_usage: bool
    fallbacks: tuple[str, ...] = ()


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_request")


def body_json(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_BODY_BYTES:
        raise _bad("The request body is too large.")
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise _bad("The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise _bad("The request body must be a JSON object.")
    return data


def _text(content: Any, param: str) -> str:
    """A message's content: a string, or a list of text parts (other kinds are refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        pieces = []
        for part in content:
            if (
                isinstance(part, dict)
                and part.get("type") == "text"
                and isinstance(part.get("text"), str)
            ):
                pieces.append(part["text"])
            else:
                raise _bad("Only text content is supported.", param)
        return "".join(pieces)
    raise _bad("A message's content must be a string or a list of text parts.", param)


def _number(data: dict[str, Any], name: str, *, integer: bool, low: float, high: float) -> Any:
    value = data.get(name)
    if value is None:
        return None
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise _bad(f"{name} must be a number from {low:g} to {high:g}.", name)
    return value


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _bad("model is required.", "model")
    return model.strip()


MAX_FALLBACKS = 5


def _fallbacks(data: dict[str, Any]) -> tuple[str, ...]:
    raw = data.get("fallbacks")
    if raw is None:
        return ()
    if (
        not isinstance(raw, list)
        or len(raw) > MAX_FALLBACKS
        or not all(isinstance(m, str) and m.strip() for m in raw)
    ):
        raise _bad(f"fallbacks must be a list of up to {MAX_FALLBACKS} model names.", "fallbacks")
    return tuple(m.strip() for m in raw)


def openai_input(data: dict[str, Any]) -> ChatInput:
    messages_raw = data.get("messages")
    if not isinstance(messages_raw, list) or not messages_raw:
        raise _bad("messages must be a non-empty list.", "messages")
    messages = []
    for i, m in enumerate(messages_raw):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "developer":
            role = "system"
        if role not in ("system", "user", "assistant"):
            raise _bad(
                f"messages[{i}].role must be system, user or assistant.", f"messages[{i}].role"
            )
        messages.append(
            Message(role=role, content=_text(m.get("content"), f"messages[{i}].content"))
        )
    max_tokens = data.get("max_completion_tokens", data.get("max_tokens"))
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise _bad("stream_options must be an object.", "stream_options")
    n = data.get("n", 1)
    if n not in (1, None):
        raise _bad("Only n=1 is supported.", "n")
    return ChatInput(
        model=_model(data),
        messages=messages,
        stream=bool(data.get("stream")),
        temperature=_number(data, "temperature", integer=False, low=0, high=2),
        max_tokens=_number(
            {"max_tokens": max_tokens}, "max_tokens", integer=True, low=1, high=MAX_TOKENS
        ),
        include_usage=bool(options.get("include_usage")),
        fallbacks=_fallbacks(data),
    )


def anthropic_input(data: dict[str, Any]) -> ChatInput:
    messages_raw = data.get("messages")
    if not isinstance(messages_raw, list) or not messages_raw:
        raise _bad("messages: a non-empty list is required.", "messages")
    messages = []
    system = data.get("system")
    if system:
        messages.append(Message(role="system", content=_text(system, "system")))
    for i, m in enumerate(messages_raw):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in ("user", "assistant"):
            raise _bad(f"messages.{i}.role must be user or assistant.", f"messages.{i}.role")
        messages.append(
            Message(role=role, content=_text(m.get("content"), f"messages.{i}.content"))
        )
    max_tokens = _number(data, "max_tokens", integer=True, low=1, high=MAX_TOKENS)
    if max_tokens is None:
        raise _bad("max_tokens: Field required", "max_tokens")
    return ChatInput(
        model=_model(data),
        messages=messages,
        stream=bool(data.get("stream")),
        temperature=_number(data, "temperature", integer=False, low=0, high=1),
        max_tokens=max_tokens,
        include_usage=True,
        fallbacks=_fallbacks(data),
    )
