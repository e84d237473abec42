"""Scrub secrets out of text before it reaches an error message or a log line."""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote

REDACTED = "[REDACTED]"

# Shapes of credentials worth hiding even when we were not told the exact value: OpenAI-style
# "sk-..." keys, Google "AIza..." keys, "key=..." query parameters and bearer tokens.
_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-]{4,}"
    r"|\bAIza[0-9A-Za-z_\-]{10,}"
    r"|(?i:(?<=key=))[^&\s\"']+"
    r"|(?i:(?<=bearer ))[A-Za-z0-9._~+/\-]+=*"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every given secret (and its URL-encoded form) and every key-like shape."""
    for secret in secrets:
        if not secret:
            continue
        text = text.replace(secret, REDACTED)
        encoded = quote(secret, safe="")
        if encoded != secret:
            text = text.replace(encoded, REDACTED)
    return _SHAPES.sub(REDACTED, text)
