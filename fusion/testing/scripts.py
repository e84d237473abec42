"""How the loopback upstream answers one request: a ``Script``, registered per model name or
spelled inside the model name itself (``"bench@ttft=0.2,delay=0.01,tokens=50"``), so that
programs in other processes can script it without a control channel.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, get_args

FailMode = Literal[
    # End the body cleanly after `fail_after` tokens, with no finish/end marker; with
    # `fail_after` past the answer, only the last event (the end marker) is left out.
    "truncate",
    "disconnect",  # drop the TCP connection mid-body after `fail_after` tokens
    "stream_error",  # send the protocol's in-stream error event after `fail_after` tokens
    "malformed",  # send a chunk that is not JSON after `fail_after` tokens
    "hang",  # after headers and `fail_after` tokens, send nothing more (keep-alives allowed)
    "hang_headers",  # never even send the response headers
    "endless",  # stream tokens forever (with `delay_s` between them)
    "json_error",  # answer 200 with a JSON error body instead of a stream, as some servers do
]
FAIL_MODES: frozenset[str] = frozenset(get_args(FailMode))


@dataclass(frozen=True)
class Script:
    """One request's behaviour. Times are seconds; defaults answer at once, successfully."""

    text: str | None = None  # the answer; None: an echo of the last user message
    tokens: int | None = None  # with text None: answer with this many words instead
    token_chars: int | None = None  # split the answer every n characters (else per word)
    ttft_s: float = 0.0  # wait before the first token (after the headers and preamble)
    delay_s: float = 0.0  # wait between tokens
    chunk_sizes: tuple[int, ...] = ()  # write the SSE bytes in pieces of these sizes (cycled)
    keepalive_s: float = 0.0  # while waiting, send ": OPENROUTER PROCESSING" comments this often
    line_end: str | None = None  # "\n", "\r\n" or "\r"; None: the protocol's usual one
    multiline: bool = False  # spread each JSON payload over several `data:` lines
    status: int = 200  # not 200: answer with this HTTP error and the protocol's error body
    retry_after: str | None = None  # Retry-After header of an HTTP error
    fail: FailMode | None = None
    fail_after: int = 0  # tokens sent before `fail` happens
    error_status: int = 500  # kind of error of a `stream_error` (as its HTTP equivalent)
    error_message: str = "scripted upstream failure"
    echo_key: bool = False  # put the received key into error messages, as careless servers do
    usage: bool = True  # report token usage
    cost: float | None = None  # report OpenRouter's usage.cost
    finish_reason: str | None = None  # native finish reason; None: the protocol's "stop"
    # Each token is the wall-clock time it was sent, "<1732245600.123456>", so a client in
    # another process can measure how long the token took to reach it (benchmarks).
    stamp: bool = False

    def __post_init__(self) -> None:
        if self.fail is not None and self.fail not in FAIL_MODES:
            raise ValueError(f"unknown fail mode {self.fail!r}")
        if any(n <= 0 for n in self.chunk_sizes):
            raise ValueError("chunk sizes must be positive")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Script:
        if "chunk_sizes" in data:
            data = {**data, "chunk_sizes": tuple(data["chunk_sizes"])}
        return cls(**data)


_ALIASES = {
    "ttft": "ttft_s",
    "delay": "delay_s",
    "keepalive": "keepalive_s",
    "chunk": "chunk_sizes",
    "after": "fail_after",
}
_FIELDS = {f.name: f for f in dataclasses.fields(Script)}
_INT = re.compile(r"^\d+$")


@lru_cache(maxsize=1024)
def script_from_model(model: str) -> Script | None:
    """Parse ``name@key=value,key=value``; None when the model name carries no script.

    Keys are Script fields or the short forms ttft, delay, keepalive, chunk (sizes joined
    with "+"), after. Booleans are 0/1.
    """
    _, at, spec = model.partition("@")
    if not at:
        return None
    values: dict[str, Any] = {}
    for item in filter(None, spec.split(",")):
        key, eq, raw = item.partition("=")
        name = _ALIASES.get(key.strip(), key.strip())
        if not eq or name not in _FIELDS:
            raise ValueError(f"bad script item {item!r} in model name {model!r}")
        values[name] = _convert(name, raw.strip())
    return Script(**values)


def _convert(name: str, raw: str) -> Any:
    if name == "chunk_sizes":
        return tuple(int(n) for n in raw.split("+"))
    if name in {"multiline", "echo_key", "usage", "stamp"}:
        return raw not in {"0", "false", "no"}
    if name in {"tokens", "token_chars", "status", "fail_after", "error_status"}:
        return int(raw)
    if name.endswith("_s") or name == "cost":
        return float(raw)
    if name == "line_end":
        return {"lf": "\n", "crlf": "\r\n", "cr": "\r"}[raw]
    return raw


def answer_pieces(script: Script, model: str, prompt: str) -> list[str]:
    """The answer split into the pieces sent as tokens; they join back to the answer."""
    if script.text is not None:
        text = script.text
    elif script.tokens is not None:
        text = " ".join(f"w{i}" for i in range(script.tokens))
    else:
        text = f"Answer from {model.partition('@')[0]}: {prompt[:200]}"
    if script.token_chars:
        n = script.token_chars
        return [text[i : i + n] for i in range(0, len(text), n)]
    return re.findall(r"\S+\s*|\s+", text)
