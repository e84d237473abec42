from __future__ import annotations

import email.utils

import pytest

from fusion.errors import ProviderError
from fusion.providers.classify import (
    MAX_MESSAGE_CHARS,
    error_details,
    http_error,
    is_retryable_status,
    parse_retry_after,
    stream_error,
)
from fusion.redact import REDACTED, redact
from fusion.testing.scripts import Script
from tests.fusion.providerkit import KEY, SECRET, ask, collect, make


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_it_treats_client_errors_as_permanent(status):
    assert http_error(status, b"", {}).permanent


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504, 529])
def test_it_treats_overload_and_server_errors_as_retryable(status):
    assert is_retryable_status(status)
    assert not http_error(status, b"", {}).permanent


def test_it_treats_an_exhausted_quota_as_permanent_despite_429():
    body = b'{"error": {"message": "You exceeded your quota", "code": "insufficient_quota"}}'

    assert http_error(429, body, {}).permanent


def test_it_parses_retry_after_in_seconds_and_as_an_http_date():
    now = 1_700_000_000.0
    date = email.utils.formatdate(now + 30, usegmt=True)

    assert parse_retry_after({"retry-after": "12"}) == 12.0
    assert parse_retry_after({"retry-after": "1.5"}) == 1.5
    assert parse_retry_after({"retry-after": date}, now=now) == pytest.approx(30, abs=1)
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_it_prefers_retry_after_ms():
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25


def test_it_never_returns_a_negative_wait_for_a_past_date():
    past = email.utils.formatdate(1_000, usegmt=True)
    assert parse_retry_after({"retry-after": past}) == 0.0


def test_it_reads_googles_retry_delay_from_the_body():
    body = b"""{"error": {"code": 429, "message": "Quota", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37s"}]}}"""

    assert http_error(429, body, {}).retry_after == 37.0


@pytest.mark.parametrize(
    ("payload", "message", "status"),
    [
        ({"error": {"message": "Nope", "type": "invalid_request_error"}}, "Nope", 400),
        ({"type": "error", "error": {"type": "overloaded_error", "message": "Busy"}}, "Busy", 529),
        ({"error": {"code": 503, "message": "Down", "status": "UNAVAILABLE"}}, "Down", 503),
        ({"error": "model 'x' not found"}, "model 'x' not found", None),
        ({"detail": "Not Found"}, "Not Found", None),
    ],
)
def test_it_reads_the_message_of_every_error_shape(payload, message, status):
    text, got_status, _ = error_details(payload)

    assert text is not None and message in text
    assert got_status == status


def test_it_treats_an_unknown_in_stream_error_as_retryable():
    assert not stream_error({"error": {"message": "Something broke"}}).permanent


async def test_it_clips_long_upstream_messages_only_after_redacting(upstream, http_client):
    # Wherever the clip falls, no piece of the key may survive: clipping before redacting
    # would cut the key in half and leave a prefix that no longer matches it.
    provider = make("openai", upstream, http_client)
    for pad in range(MAX_MESSAGE_CHARS - 60, MAX_MESSAGE_CHARS, 4):
        upstream.script("gpt-x", Script(status=500, error_message="x" * pad + SECRET + "y" * 999))

        with pytest.raises(ProviderError) as caught:
            await collect(provider, ask("gpt-x"), key=KEY)

        assert len(caught.value.message) <= MAX_MESSAGE_CHARS
        assert caught.value.message.endswith("…")
        assert SECRET[:6] not in caught.value.message, pad


@pytest.mark.parametrize(
    "leak",
    [
        "bad key sk-proj-AbCdEf0123456789",
        "GET /v1beta/models?key=AIzaSyA-very-secret-google-key-1234",
        "Authorization: Bearer abc.def-ghi",
        "key=hunter2&x=1",
    ],
)
def test_it_redacts_key_shapes(leak):
    cleaned = redact(leak)

    assert REDACTED in cleaned
    assert not any(s in cleaned for s in ("AbCdEf0123", "very-secret", "abc.def", "hunter2"))


def test_it_redacts_the_exact_secret_and_its_url_encoding():
    secret = "plain secret/+="

    cleaned = redact(f"a {secret} b plain%20secret%2F%2B%3D c", [secret])

    assert cleaned == f"a {REDACTED} b {REDACTED} c"


@pytest.mark.parametrize("text", ["the model is overloaded, try later", "a task-force-alpha run"])
def test_it_leaves_harmless_text_alone(text):
    assert redact(text) == text


async def test_it_names_provider_and_model_and_never_the_key(upstream, http_client):
    upstream.script(
        "gpt-x",
        Script(
            status=400,
            echo_key=True,
            error_message=f"Bad request from key {SECRET}, see ?key={SECRET}",
        ),
    )

    with pytest.raises(ProviderError) as caught:
        await collect(make("openai", upstream, http_client), ask("gpt-x"), key=KEY)

    text = str(caught.value)
    assert text.startswith("Test OpenAI/gpt-x: bad request")
    assert "Bad request from key" in text
    assert SECRET not in text and SECRET[3:] not in text
    assert caught.value.provider == "Test OpenAI" and caught.value.model == "gpt-x"
