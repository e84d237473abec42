from __future__ import annotations

import pytest

from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.base import Timeouts
from fusion.providers.classify import UpstreamError
from fusion.providers.gemini import GeminiProvider
from fusion.providers.http import StreamState
from fusion.sse import SseEvent
from fusion.testing.scripts import Script
from fusion.types import ChatRequest, Message
from tests.fusion.providerkit import KEY, SECRET, ask, collect, make


async def test_it_streams_text_usage_and_a_normalised_finish_reason(upstream, http_client):
    upstream.script("gemini-x", Script(text="Guten Tag, schöne Welt"))

    text, end, _ = await collect(make("gemini", upstream, http_client), ask("gemini-x", "12345678"))

    assert text == "Guten Tag, schöne Welt"
    assert end.finish_reason == "stop"  # Gemini's STOP
    assert end.usage is not None
    assert (end.usage.input_tokens, end.usage.output_tokens, end.usage.estimated) == (2, 4, False)


async def test_it_puts_the_key_only_in_the_header_never_in_the_url(upstream, http_client):
    await collect(make("gemini", upstream, http_client), ask("gemini-x"))

    (seen,) = upstream.requests
    assert seen.url == "/v1beta/models/gemini-x:streamGenerateContent?alt=sse"
    assert SECRET not in seen.url and "key=" not in seen.url
    assert seen.headers["x-goog-api-key"] == SECRET
    assert "authorization" not in seen.headers


async def test_it_sends_contents_system_instruction_and_generation_config(upstream, http_client):
    request = ChatRequest(
        model="gemini-x",
        messages=(
            Message("system", "Be brief."),
            Message("user", "Hi"),
            Message("assistant", "Hello"),
            Message("user", "More"),
        ),
        temperature=0.2,
        max_tokens=64,
    )

    await collect(make("gemini", upstream, http_client), request)

    assert upstream.requests[0].body == {
        "contents": [
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello"}]},
            {"role": "user", "parts": [{"text": "More"}]},
        ],
        "systemInstruction": {"parts": [{"text": "Be brief."}]},
        "generationConfig": {"temperature": 0.2, "maxOutputTokens": 64},
    }


async def test_it_maps_max_tokens_to_length(upstream, http_client):
    _, end, _ = await collect(
        make("gemini", upstream, http_client), ask("gemini-x", "a b c d", max_tokens=1)
    )

    assert end.finish_reason == "length"


@pytest.mark.parametrize("after", [2, 99], ids=["mid-answer", "only-finish-chunk-missing"])
async def test_it_treats_a_stream_without_finish_reason_as_truncated(upstream, http_client, after):
    upstream.script("gemini-x", Script(fail="truncate", fail_after=after))

    with pytest.raises(TruncatedStream) as caught:
        await collect(make("gemini", upstream, http_client), ask("gemini-x"))

    assert not caught.value.permanent


@pytest.mark.parametrize(("status", "permanent"), [(503, False), (400, True)])
async def test_it_classifies_an_error_inside_the_stream(upstream, http_client, status, permanent):
    upstream.script("gemini-x", Script(fail="stream_error", fail_after=1, error_status=status))

    with pytest.raises(ProviderError) as caught:
        await collect(make("gemini", upstream, http_client), ask("gemini-x"))

    assert (caught.value.permanent, caught.value.status) == (permanent, status)


async def test_it_never_shows_the_key_in_errors_even_when_echoed(upstream, http_client):
    upstream.script("gemini-x", Script(status=400, echo_key=True, error_message="API key bad"))

    with pytest.raises(ProviderError) as caught:
        await collect(make("gemini", upstream, http_client), ask("gemini-x"))

    assert caught.value.permanent
    assert "API key bad" in str(caught.value)
    assert SECRET not in str(caught.value)


async def test_it_reports_429_with_retry_after(upstream, http_client):
    upstream.script("gemini-x", Script(status=429, retry_after="3"))

    with pytest.raises(ProviderError) as caught:
        await collect(make("gemini", upstream, http_client), ask("gemini-x"))

    assert (caught.value.permanent, caught.value.retry_after) == (False, 3.0)


async def test_it_enforces_the_first_token_timeout(upstream, http_client):
    upstream.script("gemini-x", Script(ttft_s=3))
    provider = make("gemini", upstream, http_client, timeouts=Timeouts(first_token=0.2, total=3))

    with pytest.raises(ProviderError, match=r"no first token within 0\.2s"):
        await collect(provider, ask("gemini-x"))


async def test_it_lists_chat_models_without_the_models_prefix(upstream, http_client):
    models = await make("gemini", upstream, http_client).list_models(KEY)

    assert models == ["up-large", "up-small"]  # the embedding model is left out
    seen = upstream.requests[0]
    assert seen.headers["x-goog-api-key"] == SECRET
    assert SECRET not in seen.url


def test_it_rejects_a_blocked_prompt_permanently():
    provider = GeminiProvider(name="g")
    blocked = SseEvent(data='{"promptFeedback": {"blockReason": "SAFETY"}}')

    with pytest.raises(UpstreamError) as caught:
        provider.on_event(blocked, StreamState(ask("gemini-x")))

    assert caught.value.permanent and "SAFETY" in caught.value.message


def test_it_skips_thought_parts():
    provider = GeminiProvider(name="g")
    chunk = (
        '{"candidates": [{"content": {"parts": [{"text": "hmm", "thought": true},'
        ' {"text": "Answer"}]}}]}'
    )

    assert provider.on_event(SseEvent(data=chunk), StreamState(ask("gemini-x"))) == "Answer"
