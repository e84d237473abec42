from __future__ import annotations

import time
from decimal import Decimal

import pytest

from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.base import Timeouts
from fusion.providers.openai import OpenAIProvider
from fusion.providers.registry import build_provider
from fusion.testing.scripts import Script
from fusion.types import ChatRequest, Message, TextDelta
from tests.fusion.providerkit import FAST, KEY, SECRET, ask, closed_port, collect, make


async def test_it_streams_text_usage_and_finish_reason(upstream, http_client):
    upstream.script("gpt-x", Script(text="Hello there, wörld 😀!"))
    provider = make("openai", upstream, http_client)

    text, end, items = await collect(provider, ask("gpt-x"))

    assert text == "Hello there, wörld 😀!"
    assert len([i for i in items if isinstance(i, TextDelta)]) == 4  # one per streamed word
    assert end.finish_reason == "stop"
    assert end.usage is not None
    assert (end.usage.output_tokens, end.usage.estimated) == (4, False)


async def test_it_sends_a_streaming_chat_request_with_a_bearer_key(upstream, http_client):
    provider = make("openai", upstream, http_client)
    request = ChatRequest(
        model="gpt-x",
        messages=(Message("system", "Be brief."), Message("user", "Hi")),
        temperature=0.3,
        max_tokens=50,
    )

    await collect(provider, request)

    (seen,) = upstream.requests
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.body == {
        "model": "gpt-x",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.3,
        "max_tokens": 50,
    }


async def test_it_sends_no_authorization_without_a_key(upstream, http_client):
    await collect(make("openai", upstream, http_client), ask("local"), key=None)

    assert "authorization" not in upstream.requests[0].headers


async def test_it_uses_max_completion_tokens_for_openai_itself(upstream, http_client):
    provider = build_provider(
        "openai", name="OpenAI", base_url=f"{upstream.url}/v1", client=http_client
    )
    assert isinstance(provider, OpenAIProvider)

    _, end, _ = await collect(provider, ask("gpt-x", "one two three four", max_tokens=2))

    body = upstream.requests[0].body
    assert body["max_completion_tokens"] == 2 and "max_tokens" not in body
    assert end.finish_reason == "length"


async def test_it_estimates_usage_when_the_server_reports_none(upstream, http_client):
    upstream.script("quiet", Script(text="x" * 40, usage=False))

    _, end, _ = await collect(make("openai", upstream, http_client), ask("quiet", "y" * 20))

    assert end.usage is not None
    assert end.usage.estimated
    assert end.usage.output_tokens == 10  # 40 characters / 4
    assert end.usage.input_tokens == 5 + 4  # 20 characters / 4, plus the message overhead


async def test_it_reads_openrouters_reported_cost_as_decimal(upstream, http_client):
    upstream.script("openai/gpt-4o", Script(cost=0.000123))
    provider = build_provider(
        "openrouter", name="OpenRouter", base_url=f"{upstream.url}/v1", client=http_client
    )

    _, end, _ = await collect(provider, ask("openai/gpt-4o"))

    assert end.usage is not None
    assert end.usage.reported_cost == Decimal("0.000123")
    assert upstream.requests[0].body["usage"] == {"include": True}


async def test_it_ignores_keep_alive_comments(upstream, http_client):
    upstream.script("slow", Script(text="fine answer", ttft_s=0.12, keepalive_s=0.02))

    text, _, _ = await collect(make("openai", upstream, http_client), ask("slow"))

    assert text == "fine answer"


@pytest.mark.parametrize(
    "framing",
    [
        {"chunk_sizes": (1,)},
        {"chunk_sizes": (3, 7, 2)},
        {"line_end": "\r\n", "chunk_sizes": (5,)},
        {"line_end": "\r", "chunk_sizes": (2,)},
        {"multiline": True, "chunk_sizes": (4,)},
    ],
    ids=["bytewise", "uneven", "crlf", "cr", "multiline"],
)
async def test_it_reassembles_any_split_of_the_byte_stream(upstream, http_client, framing):
    text = "Ünïcödé ✓ across 😀 chunk borders"
    upstream.script("split", Script(text=text, token_chars=3, **framing))

    got, end, _ = await collect(make("openai", upstream, http_client), ask("split"))

    assert got == text
    assert end.finish_reason == "stop"


@pytest.mark.parametrize("fail", ["truncate", "disconnect"])
async def test_it_raises_truncated_stream_when_the_stream_stops_early(upstream, http_client, fail):
    upstream.script("cut", Script(text="one two three", fail=fail, fail_after=2))

    got: list[str] = []
    with pytest.raises(TruncatedStream) as caught:
        async for item in make("openai", upstream, http_client).stream(ask("cut"), KEY):
            if isinstance(item, TextDelta):
                got.append(item.text)

    assert "".join(got) == "one two "
    assert not caught.value.permanent


async def test_it_accepts_a_finished_stream_without_done(upstream, http_client):
    # Some compatible servers omit [DONE]; the finish reason already proves the answer whole.
    upstream.script("m", Script(text="all here", fail="truncate", fail_after=99))

    text, end, _ = await collect(make("openai", upstream, http_client), ask("m"))

    assert (text, end.finish_reason) == ("all here", "stop")


@pytest.mark.parametrize("after", [0, 2])
async def test_it_raises_the_error_sent_inside_a_200_stream(upstream, http_client, after):
    upstream.script(
        "flaky", Script(fail="stream_error", fail_after=after, error_message="Provider went away")
    )

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("flaky"))

    assert not caught.value.permanent
    assert "Provider went away" in str(caught.value)
    assert "Test OpenAI/flaky" in str(caught.value)


async def test_it_fails_a_stream_openrouter_ends_with_finish_reason_error(upstream, http_client):
    # OpenRouter ends a generation that failed upstream this way, at times with no error object.
    upstream.script("or", Script(text="half an answer", finish_reason="error"))
    provider = make("openai", upstream, http_client)
    items = []

    with pytest.raises(ProviderError) as caught:
        async for item in provider.stream(ask("or"), KEY):
            items.append(item)

    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == "half an answer"
    assert all(isinstance(i, TextDelta) for i in items)  # no StreamEnd: never a success
    assert "failed mid-stream" in str(caught.value)
    assert not caught.value.permanent


async def test_it_treats_an_in_stream_bad_request_as_permanent(upstream, http_client):
    upstream.script("bad", Script(fail="stream_error", error_status=400))

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("bad"))

    assert caught.value.permanent
    assert caught.value.status == 400


async def test_it_reads_an_error_sent_as_a_json_body_with_status_200(upstream, http_client):
    upstream.script("m", Script(fail="json_error", error_message="Model is loading"))

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("m"))

    assert "Model is loading" in str(caught.value)
    assert not caught.value.permanent


async def test_it_rejects_a_malformed_json_chunk_permanently(upstream, http_client):
    upstream.script("garbled", Script(fail="malformed", fail_after=1))

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("garbled"))

    assert caught.value.permanent
    assert not isinstance(caught.value, TruncatedStream)
    assert "malformed JSON" in str(caught.value)


async def test_it_reports_429_as_retryable_with_retry_after(upstream, http_client):
    upstream.script("busy", Script(status=429, retry_after="7", error_message="Slow down"))

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("busy"))

    error = caught.value
    assert (error.permanent, error.status, error.retry_after) == (False, 429, 7.0)
    assert "Slow down" in str(error)


async def test_it_reports_401_as_permanent_without_leaking_the_echoed_key(upstream, http_client):
    upstream.script("gpt-x", Script(status=401, echo_key=True, error_message="Bad key"))

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("gpt-x"))

    error = caught.value
    assert error.permanent and error.status == 401
    assert "Bad key" in str(error) and "[REDACTED]" in str(error)
    assert SECRET not in str(error) and SECRET not in repr(error.args)
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize(("status", "permanent"), [(404, True), (500, False), (503, False)])
async def test_it_classifies_http_errors(upstream, http_client, status, permanent):
    upstream.script("m", Script(status=status))

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("m"))

    assert (caught.value.permanent, caught.value.status) == (permanent, status)


async def test_it_reports_a_refused_connection_as_retryable(http_client):
    provider = OpenAIProvider(
        name="Gone", base_url=f"http://127.0.0.1:{closed_port()}/v1", client=http_client
    )

    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("m"))

    assert not caught.value.permanent
    assert "cannot connect" in str(caught.value)


@pytest.mark.parametrize(
    ("script", "timeouts", "message"),
    [
        (Script(ttft_s=5), Timeouts(first_token=0.2, total=3), "no first token within 0.2s"),
        (
            Script(fail="hang_headers"),
            Timeouts(first_token=0.2, total=3),
            "no first token within 0.2s",
        ),
        (
            Script(fail="hang", keepalive_s=0.02),
            Timeouts(first_token=0.2, total=3),
            "no first token within 0.2s",
        ),
        (Script(text="a b c", delay_s=5), Timeouts(idle=0.2, total=3), "no token for 0.2s"),
        (Script(fail="endless", delay_s=0.01), Timeouts(total=0.3), "total timeout"),
    ],
    ids=["slow-first-token", "no-headers", "keepalives-only", "idle", "endless"],
)
async def test_it_enforces_timeouts(upstream, http_client, script, timeouts, message):
    upstream.script("m", script)
    provider = make("openai", upstream, http_client, timeouts=timeouts)

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await collect(provider, ask("m"))

    assert time.monotonic() - started < 1.5
    assert message in str(caught.value)
    assert not caught.value.permanent


async def test_it_reuses_the_pooled_connection_between_calls(upstream, http_client):
    provider = make("openai", upstream, http_client)

    for _ in range(3):
        await collect(provider, ask("m"))

    assert len({r.peer for r in upstream.requests}) == 1


async def test_it_lists_models(upstream, http_client):
    models = await make("openai", upstream, http_client).list_models(KEY)

    assert models == ["up-large", "up-small"]
    assert upstream.requests[0].headers["authorization"] == f"Bearer {SECRET}"


async def test_it_reports_a_rejected_key_when_listing_models(http_client):
    from fusion.testing.upstream import Upstream

    async with Upstream(valid_keys={"sk-other-key-123"}) as up:
        with pytest.raises(ProviderError) as caught:
            await make("openai", up, http_client).list_models(KEY)

    assert caught.value.permanent and caught.value.status == 401


def test_it_needs_no_client_to_be_built():
    provider = OpenAIProvider(name="x", timeouts=FAST)
    assert provider.base_url == "https://api.openai.com/v1"
