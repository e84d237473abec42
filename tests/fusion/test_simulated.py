from __future__ import annotations

import asyncio
import time

import pytest

from fusion import judge
from fusion.errors import ProviderError, TruncatedStream
from fusion.providers.simulated import PRESETS, SimulatedProvider
from fusion.types import ChatRequest, Message, StreamEnd, StreamItem, TextDelta

QUESTION = (Message("user", "How do vector databases index embeddings?"),)


async def collect(provider: SimulatedProvider, request: ChatRequest) -> list[StreamItem]:
    return [item async for item in provider.stream(request, None)]


def text_of(items: list[StreamItem]) -> str:
    return "".join(i.text for i in items if isinstance(i, TextDelta))


async def answer(model: str, temperature: float | None = None, seed: int = 0) -> str:
    provider = SimulatedProvider(name="sim", options={"seed": seed})
    return text_of(await collect(provider, ChatRequest(model, QUESTION, temperature)))


async def test_it_labels_every_answer_as_simulated() -> None:
    text = await answer("sim-fast@ttft=0,tps=0")
    assert text.startswith("[simulated sim-fast] ")
    assert "simulated" in text.lower().split("]", 1)[1]


async def test_it_answers_deterministically_but_differently_per_model_and_temperature() -> None:
    a = await answer("sim-fast@ttft=0,tps=0", 0.7)
    assert a == await answer("sim-fast@ttft=0,tps=0", 0.7)
    assert a != await answer("sim-balanced@ttft=0,tps=0", 0.7)
    assert a != await answer("sim-fast@ttft=0,tps=0", 0.2)
    assert a != await answer("sim-fast@ttft=0,tps=0", 0.7, seed=1)


async def test_it_varies_repeated_identical_requests_for_self_fusion() -> None:
    provider = SimulatedProvider(name="sim")
    request = ChatRequest("sim-fast@ttft=0,tps=0", QUESTION)
    texts = {text_of(await collect(provider, request)) for _ in range(3)}
    assert len(texts) == 3


async def test_it_streams_deltas_then_one_end_with_usage() -> None:
    provider = SimulatedProvider(name="sim")
    items = await collect(provider, ChatRequest("sim-fast@ttft=0,tps=5000,tokens=40", QUESTION))
    assert all(isinstance(i, TextDelta) for i in items[:-1])
    end = items[-1]
    assert isinstance(end, StreamEnd) and end.finish_reason == "stop"
    assert end.usage is not None
    assert end.usage.input_tokens > 0
    assert end.usage.output_tokens == len(text_of(items).split())


async def test_it_honours_ttft_and_pace() -> None:
    provider = SimulatedProvider(name="sim")
    start = time.perf_counter()
    first = None
    async for _item in provider.stream(
        ChatRequest("sim@ttft=0.05,tps=400,tokens=40", QUESTION), None
    ):
        if first is None:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    # Lower bounds prove the pacing; upper bounds are loose so a busy machine does not fail it.
    assert first is not None and 0.045 <= first < 0.5
    assert 0.12 <= total < 1.0  # 50 ms + ~45 tokens at 400/s


async def test_it_caps_the_answer_at_max_tokens() -> None:
    provider = SimulatedProvider(name="sim")
    items = await collect(provider, ChatRequest("sim@ttft=0,tps=0", QUESTION, max_tokens=5))
    assert len(text_of(items).split()) == 5
    assert isinstance(items[-1], StreamEnd) and items[-1].finish_reason == "length"


async def test_it_fails_before_the_first_token_at_its_failure_rate() -> None:
    provider = SimulatedProvider(name="sim")
    with pytest.raises(ProviderError) as info:
        await collect(provider, ChatRequest("sim@ttft=0,fail=1", QUESTION))
    assert not info.value.permanent and info.value.status == 503

    async def failures(seed: int) -> list[bool]:
        p = SimulatedProvider(name="sim", options={"seed": seed})
        out = []
        for i in range(40):
            request = ChatRequest("sim@ttft=0,tps=0,fail=0.5", (Message("user", f"q{i}"),))
            try:
                await collect(p, request)
                out.append(False)
            except ProviderError:
                out.append(True)
        return out

    first = await failures(7)
    assert first == await failures(7)  # deterministic
    assert 8 <= sum(first) <= 32


async def test_it_cuts_a_stream_when_asked_to_truncate() -> None:
    provider = SimulatedProvider(name="sim")
    seen: list[str] = []
    with pytest.raises(TruncatedStream):
        async for item in provider.stream(
            ChatRequest("sim@ttft=0,tps=0,truncate=1", QUESTION), None
        ):
            assert isinstance(item, TextDelta)
            seen.append(item.text)
    assert seen


async def test_it_hangs_after_one_token_when_asked() -> None:
    provider = SimulatedProvider(name="sim")
    stream = provider.stream(ChatRequest("sim-hang@ttft=0", QUESTION), None)
    assert isinstance(await anext(stream), TextDelta)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), timeout=0.05)


async def test_it_rejects_unknown_models_permanently() -> None:
    with pytest.raises(ProviderError) as info:
        await collect(SimulatedProvider(name="sim"), ChatRequest("gpt-4o", QUESTION))
    assert info.value.permanent and info.value.status == 404


async def test_it_validates_options_and_lists_its_models() -> None:
    with pytest.raises(ValueError, match="unknown simulated option"):
        SimulatedProvider(name="sim", options={"speed": 3})
    assert await SimulatedProvider(name="sim").list_models(None) == list(PRESETS)
    custom = SimulatedProvider(name="sim", options={"models": ["sim-a", "sim-b"]})
    assert await custom.list_models(None) == ["sim-a", "sim-b"]


async def test_it_judges_with_a_verdict_the_parser_accepts() -> None:
    provider = SimulatedProvider(name="sim")
    ballot = judge.make_ballot([("m1", "one. a"), ("m2", "two. b"), ("m3", "three. c")])
    score = text_of(
        await collect(
            provider,
            ChatRequest("sim-judge@ttft=0,tps=0", judge.score_messages("Q?", ballot, None)),
        )
    )
    verdict = judge.parse_verdict(score, ballot)
    assert verdict.winner in {"m1", "m2", "m3"} and len(verdict.scores) == 3

    analysis_text = text_of(
        await collect(
            provider,
            ChatRequest("sim-judge@ttft=0,tps=0", judge.analysis_messages("Q?", ballot, None)),
        )
    )
    analysis = judge.parse_verdict(analysis_text, ballot, analysis=True)
    assert analysis.analysis is not None and analysis.analysis.consensus

    synthesis = text_of(
        await collect(
            provider,
            ChatRequest(
                "sim-judge@ttft=0,tps=0",
                judge.synthesis_messages("Q?", ballot, analysis.analysis, None),
            ),
        )
    )
    assert synthesis.startswith("[simulated sim-judge] Merged answer")
    assert "one." in synthesis and "three." in synthesis


async def test_it_revises_its_answer_in_a_debate() -> None:
    provider = SimulatedProvider(name="sim")
    messages = judge.debate_messages(
        question="Q about indexes?",
        own_answer="[simulated sim-fast] My view.",
        others=["x"],
        round=1,
        system_prompt=None,
    )
    text = text_of(await collect(provider, ChatRequest("sim-fast@ttft=0,tps=0", messages)))
    assert text.startswith("[simulated sim-fast] Revised answer (round 1):")
    assert text.endswith("My view.")
