"""Build a provider from its kind, as stored by the workbench, and describe the kinds for the UI."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from fusion.providers.anthropic import ANTHROPIC_BASE_URL, AnthropicProvider
from fusion.providers.base import Provider, Timeouts
from fusion.providers.gemini import GEMINI_BASE_URL, GeminiProvider
from fusion.providers.openai import OPENAI_BASE_URL, OpenAIProvider
from fusion.providers.transport import HttpClient

OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"


@dataclass(frozen=True)
class ProviderKind:
    kind: str
    label: str
    protocol: str  # "openai", "anthropic", "gemini" or "simulated"
    default_base_url: str | None
    needs_key: bool
    needs_base_url: bool
    help: str = ""


PROVIDER_KINDS: dict[str, ProviderKind] = {
    k.kind: k
    for k in (
        ProviderKind("openai", "OpenAI", "openai", OPENAI_BASE_URL, True, False),
        ProviderKind(
            "openrouter",
            "OpenRouter",
            "openai",
            OPENROUTER_BASE_URL,
            True,
            False,
            "Reports the cost of every call; model ids look like openai/gpt-4o.",
        ),
        ProviderKind(
            "openai_compatible",
            "OpenAI-compatible server",
            "openai",
            None,
            False,
            True,
            "Groq, Together, DeepSeek, Mistral, vLLM, Ollama, llama.cpp, LM Studio …: "
            "the base URL ends with the API root, e.g. http://localhost:11434/v1.",
        ),
        ProviderKind("anthropic", "Anthropic", "anthropic", ANTHROPIC_BASE_URL, True, False),
        ProviderKind("gemini", "Google Gemini", "gemini", GEMINI_BASE_URL, True, False),
        ProviderKind(
            "simulated",
            "Simulated (offline)",
            "simulated",
            None,
            False,
            False,
            "Deterministic fake models for demos and tests; prices are fictitious.",
        ),
    )
}

_HTTP_OPTIONS: dict[str, frozenset[str]] = {
    "openai": frozenset({"headers", "max_tokens_field", "include_usage", "extra_body"}),
    "anthropic": frozenset({"headers", "default_max_tokens"}),
    "gemini": frozenset({"headers"}),
}

# Per-kind defaults, overridable through ``options``.
_DEFAULT_OPTIONS: dict[str, dict[str, Any]] = {
    # OpenAI's reasoning models reject max_tokens; all its chat models take this one.
    "openai": {"max_tokens_field": "max_completion_tokens"},
    "openrouter": {"extra_body": {"usage": {"include": True}}},
}


def build_provider(
    kind: str,
    *,
    name: str,
    base_url: str | None = None,
    client: HttpClient | httpx.AsyncClient | None = None,
    timeouts: Timeouts | None = None,
    options: Mapping[str, Any] | None = None,
) -> Provider:
    """A provider of ``kind`` (a key of ``PROVIDER_KINDS``); raises ValueError on bad input."""
    spec = PROVIDER_KINDS.get(kind)
    if spec is None:
        raise ValueError(f"unknown provider kind {kind!r}; known: {', '.join(PROVIDER_KINDS)}")
    if spec.protocol == "simulated":
        # Imported late: the simulated provider is optional for HTTP-only deployments.
        module = importlib.import_module("fusion.providers.simulated")
        provider: Provider = module.SimulatedProvider(
            name=name, timeouts=timeouts, options=dict(options or {})
        )
        return provider
    url = base_url or spec.default_base_url
    if not url:
        raise ValueError(f"a {spec.label} provider needs a base URL")
    opts = {**_DEFAULT_OPTIONS.get(kind, {}), **(options or {})}
    unknown = set(opts) - _HTTP_OPTIONS[spec.protocol]
    if unknown:
        raise ValueError(f"unknown options for {kind}: {', '.join(sorted(unknown))}")
    common: dict[str, Any] = {"name": name, "base_url": url, "client": client, "timeouts": timeouts}
    if spec.protocol == "anthropic":
        return AnthropicProvider(**common, **opts)
    if spec.protocol == "gemini":
        return GeminiProvider(**common, **opts)
    return OpenAIProvider(**common, **opts)
