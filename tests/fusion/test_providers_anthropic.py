from __future__ import annotations

import pytest

from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.base import Timeouts
from fusion.testing.scripts import Script
from fusion.types import ChatRequest, Message
from tests.fusion.providerkit import KEY, SECRET, ask, collect, make


async def test_it_streams_text_usage_and_a_normalised_stop_reason(upstream, http_client):
    upstream.script("claude-x", Script(text="Bonjour à tous 🎉"))

    text, end, _ = await collect(make("anthropic", upstream, http_client), ask("claude-x", "abcd"))

    assert text == "Bonjour à tous 🎉"
    assert end.finish_reason == "stop"  # Anthropic's end_turn
    assert end.usage is not None
    assert (end.usage.input_tokens, end.usage.output_tokens) == (1, 4)
    assert not end.usage.estimated


async def test_it_sends_the_key_and_version_headers_and_a_top_level_system(upstream, http_client):
    request = ChatRequest(
        model="claude-x",
        messages=(
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("user", "there"),
            Message("assistant", "Hello"),
            Message("user", "Go on"),
        ),
        temperature=0.5,
    )

    await collect(make("anthropic", upstream, http_client), request)

    (seen,) = upstream.requests
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == SECRET
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in seen.headers
    assert seen.body == {
        "model": "claude-x",
        "max_tokens": 4096,  # required by Anthropic, so always sent
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "Hi\n\nthere"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Go on"},
        ],
        "stream": True,
        "temperature": 0.5,
    }


async def test_it_maps_max_tokens_to_length(upstream, http_client):
    _, end, _ = await collect(
        make("anthropic", upstream, http_client), ask("claude-x", "a b c d e", max_tokens=2)
    )

    assert upstream.requests[0].body["max_tokens"] == 2
    assert end.finish_reason == "length"


async def test_it_estimates_usage_when_none_is_reported(upstream, http_client):
    upstream.script("claude-x", Script(text="y" * 12, usage=False))

    _, end, _ = await collect(make("anthropic", upstream, http_client), ask("claude-x"))

    assert end.usage is not None
    assert end.usage.estimated and end.usage.output_tokens == 3


async def test_it_ignores_pings_and_keep_alives_at_any_split(upstream, http_client):
    upstream.script(
        "claude-x", Script(text="ça va", chunk_sizes=(1, 2), keepalive_s=0.02, ttft_s=0.06)
    )

    text, _, _ = await collect(make("anthropic", upstream, http_client), ask("claude-x"))

    assert text == "ça va"


@pytest.mark.parametrize(("status", "permanent"), [(529, False), (429, False), (400, True)])
async def test_it_classifies_a_mid_stream_error_event(upstream, http_client, status, permanent):
    upstream.script(
        "claude-x",
        Script(fail="stream_error", fail_after=1, error_status=status, error_message="Overloaded"),
    )

    with pytest.raises(ProviderError) as caught:
        await collect(make("anthropic", upstream, http_client), ask("claude-x"))

    assert (caught.value.permanent, caught.value.status) == (permanent, status)
    assert "Overloaded" in str(caught.value)


@pytest.mark.parametrize("after", [1, 99], ids=["mid-answer", "only-message-stop-missing"])
async def test_it_raises_truncated_stream_without_message_stop(upstream, http_client, after):
    upstream.script("claude-x", Script(fail="truncate", fail_after=after))

    with pytest.raises(TruncatedStream):
        await collect(make("anthropic", upstream, http_client), ask("claude-x"))


async def test_it_reports_401_as_permanent_and_redacts_the_echoed_key(upstream, http_client):
    upstream.script("claude-x", Script(status=401, echo_key=True))

    with pytest.raises(ProviderError) as caught:
        await collect(make("anthropic", upstream, http_client), ask("claude-x"))

    assert caught.value.permanent and caught.value.status == 401
    assert "authentication_error" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_it_reports_529_as_retryable(upstream, http_client):
    upstream.script("claude-x", Script(status=529, retry_after="2"))

    with pytest.raises(ProviderError) as caught:
        await collect(make("anthropic", upstream, http_client), ask("claude-x"))

    assert (caught.value.permanent, caught.value.retry_after) == (False, 2.0)


async def test_it_enforces_the_idle_timeout(upstream, http_client):
    upstream.script("claude-x", Script(text="a b", fail="hang", fail_after=1))
    provider = make("anthropic", upstream, http_client, timeouts=Timeouts(idle=0.2, total=3))

    with pytest.raises(ProviderError, match=r"no token for 0\.2s"):
        await collect(provider, ask("claude-x"))


async def test_it_lists_models_with_its_own_headers(upstream, http_client):
    models = await make("anthropic", upstream, http_client).list_models(KEY)

    assert models == ["up-large", "up-small"]
    seen = upstream.requests[0]
    assert seen.url.startswith("/v1/models")
    assert seen.headers["x-api-key"] == SECRET
