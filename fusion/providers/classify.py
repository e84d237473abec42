"""Turn what an upstream said (HTTP status, headers, JSON error bodies) into error facts.

Provider modules raise ``UpstreamError``; ``HttpProvider`` turns it into a ``ProviderError``
that names the provider and model and has every key redacted.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from typing import Any

# Error messages are clipped only after redaction (in HttpProvider): clipping first could cut
# a key in half and leave a prefix that no longer matches the secret.
MAX_MESSAGE_CHARS = 400

RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})

# Error "type"/"code"/"status" words of OpenAI, Anthropic and Google, as HTTP statuses, so an
# error delivered inside a 200 stream is classified like the same error sent as a status.
_ERROR_WORDS: dict[str, int] = {
    "invalid_request_error": 400,
    "invalid_argument": 400,
    "failed_precondition": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "unauthenticated": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "not_found": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "resource_exhausted": 429,
    "api_error": 500,
    "server_error": 500,
    "internal": 500,
    "unavailable": 503,
    "deadline_exceeded": 504,
    "overloaded_error": 529,
}

# Words that make an otherwise retryable status permanent: waiting does not add credit.
_PERMANENT_WORDS = frozenset({"insufficient_quota", "billing_hard_limit_reached"})

_STATUS_WORDS: dict[int, str] = {
    400: "bad request",
    401: "authentication failed (check the key)",
    402: "payment required (out of credits)",
    403: "permission denied",
    404: "not found (unknown model or wrong base URL)",
    408: "request timeout",
    409: "conflict",
    413: "request too large",
    422: "unprocessable request",
    425: "too early",
    429: "rate limited",
    529: "overloaded",
}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


class UpstreamError(Exception):
    """What went wrong, before it is dressed as a ``ProviderError``; may still hold a key."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        truncated: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.status = status
        self.retry_after = retry_after
        self.truncated = truncated


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def describe_status(status: int) -> str:
    if status in _STATUS_WORDS:
        return _STATUS_WORDS[status]
    return "server error" if status >= 500 else f"HTTP error {status}"


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (seconds or HTTP-date) or ``retry-after-ms``."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def squash(text: str) -> str:
    return " ".join(text.split())


def clip(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_details(payload: Any) -> tuple[str | None, int | None, bool]:
    """(message, status-equivalent, forced permanent) from an error JSON body or object.

    Knows ``{"error": {"message", "type", "code", "status"}}`` (OpenAI, OpenRouter, Google),
    ``{"type": "error", "error": {...}}`` (Anthropic), ``{"error": "..."}`` (Ollama) and
    ``{"detail": ...}`` / ``{"message": ...}`` (FastAPI-style servers such as vLLM).
    """
    if isinstance(payload, list) and payload:
        payload = payload[0]  # Google sometimes wraps the error object in a list
    if not isinstance(payload, dict):
        return (squash(str(payload)) if payload else None), None, False
    error = payload.get("error", payload)
    if isinstance(error, str):
        return squash(error), None, False
    if not isinstance(error, dict):
        return None, None, False
    message = error.get("message") or error.get("detail") or payload.get("detail")
    words = [str(error[k]).lower() for k in ("type", "code", "status") if error.get(k)]
    status: int | None = None
    for k in ("code", "status"):
        value = error.get(k)
        if isinstance(value, int) and 400 <= value < 600:
            status = value
        elif isinstance(value, str) and value.isdigit() and 400 <= int(value) < 600:
            status = int(value)
    if status is None:
        status = next((_ERROR_WORDS[w] for w in words if w in _ERROR_WORDS), None)
    kind = next((w for w in words if not w.isdigit()), None)
    text = str(message) if message is not None else None
    if text and kind and kind not in text.lower():
        text = f"{kind}: {text}"
    elif not text:
        text = kind
    forced_permanent = any(w in _PERMANENT_WORDS for w in words)
    return (squash(text) if text else None), status, forced_permanent


def retry_delay_from_payload(payload: Any) -> float | None:
    """Google's ``RetryInfo.retryDelay`` ("37s") inside ``error.details``, if present."""
    error = payload.get("error") if isinstance(payload, dict) else None
    details = error.get("details") if isinstance(error, dict) else None
    if not isinstance(details, list):
        return None
    for item in details:
        if isinstance(item, dict) and isinstance(item.get("retryDelay"), str):
            match = _DURATION.match(item["retryDelay"])
            if match:
                return float(match.group(1))
    return None


def http_error(status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamError:
    """Classify a non-200 answer from its status, headers and (possibly JSON) body."""
    try:
        payload: Any = json.loads(body) if body else None
    except ValueError:
        payload = body.decode("utf-8", "replace")
    detail, _, forced_permanent = error_details(payload)
    retry_after = parse_retry_after(headers)
    if retry_after is None:
        retry_after = retry_delay_from_payload(payload)
    message = describe_status(status) + (f": {detail}" if detail else "")
    return UpstreamError(
        message,
        permanent=forced_permanent or not is_retryable_status(status),
        status=status,
        retry_after=retry_after,
    )


def stream_error(payload: Any) -> UpstreamError:
    """Classify an error object delivered inside a 200 stream."""
    detail, status, forced_permanent = error_details(payload)
    return UpstreamError(
        f"error in stream: {detail or 'no details'}",
        # An unclassifiable mid-stream failure is most likely on the server side: retry.
        permanent=forced_permanent or (status is not None and not is_retryable_status(status)),
        status=status,
        retry_after=retry_delay_from_payload(payload),
    )


def malformed_json(data: str) -> UpstreamError:
    return UpstreamError(f"malformed JSON in stream chunk: {data!r}", permanent=True)


def load_json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise malformed_json(data) from None


def load_object(data: str) -> dict[str, Any]:
    """One SSE ``data`` payload that must be a JSON object."""
    value = load_json(data)
    if not isinstance(value, dict):
        raise malformed_json(data)
    return value
