"""Rough token counts for when a provider reports none (about four characters a token)."""

from __future__ import annotations

from collections.abc import Iterable

from fusion.types import Message

CHARS_PER_TOKEN = 4
# The output ceiling assumed for a call that leaves max_tokens open: what cost estimates and
# budgets count, and what Anthropic (whose API requires max_tokens) is sent. One number, so
# that what a run reserves is what its calls may actually produce there.
DEFAULT_MAX_TOKENS = 4096
# Chat formats wrap every message in a few tokens of role markup.
TOKENS_PER_MESSAGE = 4


def estimate_tokens(text: str) -> int:
    """Tokens in ``text``: ceil(chars / 4), 0 for the empty string."""
    return tokens_for_chars(len(text))


def tokens_for_chars(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: Iterable[Message]) -> int:
    return sum(estimate_tokens(m.content) + TOKENS_PER_MESSAGE for m in messages)
