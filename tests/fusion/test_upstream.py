"""The loopback upstream itself: scripting by queue, by model name, from another thread."""

from __future__ import annotations

import httpx
import pytest

from fusion.errors import ProviderError
from fusion.testing.scripts import Script, answer_pieces, script_from_model
from fusion.testing.upstream import Upstream
from tests.fusion.providerkit import ask, collect, make


async def test_it_plays_queued_scripts_in_order_then_repeats_the_last(upstream, http_client):
    upstream.script("m", Script(status=429, retry_after="1"), Script(text="ok"))
    provider = make("openai", upstream, http_client)

    with pytest.raises(ProviderError):
        await collect(provider, ask("m"))
    first, _, _ = await collect(provider, ask("m"))
    again, _, _ = await collect(provider, ask("m"))

    assert (first, again) == ("ok", "ok")
    assert upstream.calls("m") == 3 and upstream.calls() == 3


async def test_it_reads_a_script_from_the_model_name(upstream, http_client):
    model = "bench@tokens=5,chunk=2+3,delay=0.001"

    text, _, _ = await collect(make("anthropic", upstream, http_client), ask(model))

    assert text == "w0 w1 w2 w3 w4"


def test_it_parses_model_name_scripts():
    script = script_from_model("x@ttft=0.2,fail=truncate,after=3,usage=0,line_end=crlf")

    assert script == Script(ttft_s=0.2, fail="truncate", fail_after=3, usage=False, line_end="\r\n")
    assert script_from_model("plain-model") is None
    with pytest.raises(ValueError):
        script_from_model("x@nonsense=1")


def test_it_splits_answers_into_pieces_that_join_back():
    text = "  lead, two  spaces\nand lines "

    assert "".join(answer_pieces(Script(text=text), "m", "")) == text
    assert "".join(answer_pieces(Script(text=text, token_chars=4), "m", "")) == text


def test_it_serves_from_a_thread_and_takes_scripts_over_http():
    up = Upstream()
    url = up.start_in_thread()
    try:
        with httpx.Client(base_url=url, trust_env=False) as client:
            scripted = client.post(
                "/_upstream/script", json={"model": "t", "scripts": [{"status": 503}]}
            )
            answer = client.post("/v1/chat/completions", json={"model": "t", "messages": []})
            seen = client.get("/_upstream/requests").json()
    finally:
        up.stop_thread()

    assert scripted.status_code == 200
    assert answer.status_code == 503
    assert [r["model"] for r in seen] == ["t"]
