"""The official ``openai`` package as a real client of /v1 on the live stack (daphne + worker)."""

from __future__ import annotations

from decimal import Decimal

import openai
import pytest

from tests.workbench.gateway.helpers import FAST, sim_credential, token_for
from tests.workbench.runs.helpers import simulated_pool
from workbench.lib.stack import Stack
from workbench.pools.models import Mode
from workbench.runs.models import ProviderCall, Run, RunSource, RunStatus
from workbench.tokens.models import ApiToken

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


def client(stack: Stack, token: str) -> openai.OpenAI:
    # No retries: a retried request would start a second run.
    return openai.OpenAI(base_url=stack.url + "/v1", api_key=token, max_retries=0, timeout=60)


def recorded_usage(run_id: str) -> tuple[int, int]:
    calls = ProviderCall.objects.filter(run_id=run_id)
    return sum(c.input_tokens for c in calls), sum(c.output_tokens for c in calls)


def test_it_lists_pools_and_catalog_models(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST])
    sim_credential(workspace, alice, label="sim")

    ids = {m.id for m in client(live_stack, token_for(alice, workspace)).models.list()}

    assert f"fusion/{pool.slug}" in ids
    assert "sim/sim-fast" in ids


def test_it_answers_with_the_fused_answer_and_every_calls_usage(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST, FAST])
    raw = client(live_stack, token_for(alice, workspace)).chat.completions.with_raw_response
    response = raw.create(model=f"fusion/{pool.slug}", messages=PROMPT)
    completion = response.parse()

    run = Run.objects.get(pk=response.headers["X-Fusion-Run-Id"])
    assert run.status == RunStatus.FINISHED and run.source == RunSource.GATEWAY
    assert completion.choices[0].message.content == run.fused_text
    assert completion.choices[0].finish_reason == "stop"
    inp, out = recorded_usage(str(run.pk))
    assert {c.candidate for c in run.calls.all()} >= {"m1", "m2", "m3", "judge"}
    assert completion.usage.prompt_tokens == inp and completion.usage.completion_tokens == out
    fusion = completion.model_extra["fusion"]
    assert fusion["run_id"] == str(run.pk) and fusion["url"].endswith(f"/runs/{run.pk}/")
    assert len(fusion["candidates"]) == 3 and fusion["verdict"]["winner"] == run.winner
    assert {c["status"] for c in fusion["candidates"]} == {"done"}
    assert Decimal(fusion["cost"]) == sum(c.cost for c in run.calls.all())


def test_it_streams_a_best_of_answer_after_the_verdict(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST])
    stream = client(live_stack, token_for(alice, workspace)).chat.completions.create(
        model=f"fusion/{pool.slug}", messages=PROMPT, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks = list(stream)

    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    run = Run.objects.get(pk=chunks[0].id.removeprefix("chatcmpl-"))
    assert text == run.fused_text and text.startswith("[simulated")
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == recorded_usage(
        str(run.pk)
    )


def test_it_streams_a_merge_synthesis_as_it_is_written(live_stack: Stack, alice, workspace) -> None:
    # About a second of synthesis: several delta flushes even on a loaded machine.
    pool = simulated_pool(
        workspace, alice, [FAST, FAST], mode=Mode.MERGE, judge="sim-judge@ttft=0.2,tps=40"
    )
    stream = client(live_stack, token_for(alice, workspace)).chat.completions.create(
        model=f"fusion/{pool.slug}", messages=PROMPT, stream=True
    )
    pieces = [
        c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content
    ]

    run = Run.objects.order_by("-created_at").first()
    assert run.status == RunStatus.FINISHED
    assert len(pieces) > 1  # deltas, not one piece at the end
    assert "".join(pieces).strip() == run.fused_text


def test_it_passes_a_single_model_through_and_records_the_call(
    live_stack: Stack, alice, workspace
) -> None:
    credential = sim_credential(workspace, alice)
    api = client(live_stack, token_for(alice, workspace))

    completion = api.chat.completions.create(model=f"{credential.label}/{FAST}", messages=PROMPT)
    chunks = list(api.chat.completions.create(
        model=f"{credential.label}/{FAST}", messages=PROMPT, stream=True,
        stream_options={"include_usage": True},
    ))  # fmt: skip

    assert completion.choices[0].message.content.startswith("[simulated sim-fast")
    runs = list(Run.objects.filter(source=RunSource.GATEWAY).order_by("created_at"))
    assert len(runs) == 2 and all(r.status == RunStatus.FINISHED for r in runs)
    call = runs[0].calls.get()
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (
        call.input_tokens, call.output_tokens
    )  # fmt: skip
    assert call.cost is not None and call.latency_ms > 0 and call.ttft_ms is not None
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == runs[1].fused_text == runs[1].candidates.get().text
    assert chunks[-1].usage.completion_tokens == runs[1].calls.get().output_tokens


def test_it_raises_the_sdks_error_types(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST])
    with pytest.raises(openai.AuthenticationError):
        client(live_stack, "fw_not-a-real-token-at-all").models.list()
    api = client(live_stack, token_for(alice, workspace))
    with pytest.raises(openai.NotFoundError) as not_found:
        api.chat.completions.create(model="fusion/no-such-pool", messages=PROMPT)
    assert not_found.value.body["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model=f"fusion/{pool.slug}", messages=[])
    with pytest.raises(openai.BadRequestError):
        api.chat.completions.create(model=f"fusion/{pool.slug}", messages=PROMPT, temperature=9)


def test_it_raises_the_sdks_error_types_for_budgets_and_rate_limits(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST], budget_usd=Decimal("0.0001"))
    token = token_for(alice, workspace)
    with pytest.raises(openai.APIStatusError) as over_cap:
        client(live_stack, token).chat.completions.create(
            model=f"fusion/{pool.slug}", messages=PROMPT
        )
    assert over_cap.value.status_code == 402 and over_cap.value.body["code"] == "over_run_cap"

    ApiToken.objects.update(rate_per_minute=1)  # the refusal above took the one request
    with pytest.raises(openai.RateLimitError) as limited:
        client(live_stack, token).models.list()
    assert int(limited.value.response.headers["Retry-After"]) >= 1


def test_it_answers_a_debate_with_its_synthesis_and_every_rounds_usage(
    live_stack: Stack, alice, workspace
) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST], mode=Mode.DEBATE, rounds=1)
    completion = client(live_stack, token_for(alice, workspace)).chat.completions.create(
        model=f"fusion/{pool.slug}", messages=PROMPT
    )

    run = Run.objects.get(pk=completion.model_extra["fusion"]["run_id"])
    assert run.status == RunStatus.FINISHED and run.mode == Mode.DEBATE
    assert completion.choices[0].message.content == run.fused_text
    assert sorted({c.round for c in run.calls.all()}) == [0, 1]  # both rounds were called
    inp, out = recorded_usage(str(run.pk))
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (inp, out)


def test_it_answers_502_when_every_member_failed(live_stack: Stack, alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast@fail=1", "sim-fast@fail=1"], judge=None)
    with pytest.raises(openai.InternalServerError) as failed:
        client(live_stack, token_for(alice, workspace)).chat.completions.create(
            model=f"fusion/{pool.slug}", messages=PROMPT
        )
    assert failed.value.status_code == 502
