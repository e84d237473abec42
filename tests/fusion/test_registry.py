from __future__ import annotations

import pytest

from fusion.providers.anthropic import AnthropicProvider
from fusion.providers.base import Timeouts
from fusion.providers.gemini import GeminiProvider
from fusion.providers.openai import OpenAIProvider
from fusion.providers.registry import PROVIDER_KINDS, build_provider
from tests.fusion.providerkit import ask, collect


@pytest.mark.parametrize(
    ("kind", "cls", "base_url"),
    [
        ("openai", OpenAIProvider, "https://api.openai.com/v1"),
        ("openrouter", OpenAIProvider, "https://openrouter.ai/api/v1"),
        ("anthropic", AnthropicProvider, "https://api.anthropic.com"),
        ("gemini", GeminiProvider, "https://generativelanguage.googleapis.com"),
    ],
)
def test_it_builds_each_http_kind_with_its_default_base_url(kind, cls, base_url):
    provider = build_provider(kind, name="p")

    assert type(provider) is cls
    assert provider.base_url == base_url
    assert PROVIDER_KINDS[kind].default_base_url == base_url


def test_it_requires_a_base_url_for_openai_compatible_servers():
    assert PROVIDER_KINDS["openai_compatible"].needs_base_url
    with pytest.raises(ValueError, match="base URL"):
        build_provider("openai_compatible", name="vllm")

    provider = build_provider(
        "openai_compatible", name="ollama", base_url="http://localhost:11434/v1/"
    )
    assert isinstance(provider, OpenAIProvider)
    assert provider.base_url == "http://localhost:11434/v1"


def test_it_rejects_unknown_kinds_and_options():
    with pytest.raises(ValueError, match="unknown provider kind"):
        build_provider("palm", name="p")
    with pytest.raises(ValueError, match="unknown options"):
        build_provider("gemini", name="p", options={"max_tokens_field": "x"})


def test_it_passes_options_and_timeouts():
    timeouts = Timeouts(first_token=1.0)
    provider = build_provider(
        "anthropic",
        name="p",
        timeouts=timeouts,
        options={"default_max_tokens": 1024, "headers": {"anthropic-beta": "x"}},
    )

    assert isinstance(provider, AnthropicProvider)
    assert provider.default_max_tokens == 1024
    assert provider.extra_headers == {"anthropic-beta": "x"}
    assert provider.timeouts is timeouts


async def test_it_builds_the_simulated_provider_lazily():
    provider = build_provider("simulated", name="Demo")

    assert provider.kind == "simulated"
    text, _, _ = await collect(provider, ask("sim-fast@ttft=0,tps=0,tokens=3"), key=None)
    assert text


def test_it_describes_every_kind_for_the_ui():
    assert set(PROVIDER_KINDS) == {
        "openai",
        "openrouter",
        "openai_compatible",
        "anthropic",
        "gemini",
        "simulated",
    }
    assert not PROVIDER_KINDS["simulated"].needs_key
    assert PROVIDER_KINDS["anthropic"].needs_key
