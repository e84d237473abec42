"""The official ``anthropic`` package as a real client of /anthropic/v1/messages."""

from __future__ import annotations

import anthropic
import pytest

from tests.workbench.gateway.helpers import FAST, sim_credential, token_for
from tests.workbench.runs.helpers import simulated_pool
from workbench.lib.stack import Stack
from workbench.pools.models import Mode
from workbench.runs.models import ProviderCall, Run, RunStatus

pytestmark = pytest.mark.slow

PROMPT = [{"role": "user", "content": "What is 2 + 2?"}]


def client(stack: Stack, token: str, *, bearer: bool = False) -> anthropic.Anthropic:
    if bearer:
        return anthropic.Anthropic(
            base_url=stack.url + "/anthropic", auth_token=token, max_retries=0, timeout=60
        )
    return anthropic.Anthropic(
        base_url=stack.url + "/anthropic", api_key=token, max_retries=0, timeout=60
    )


def usage_of(run: Run) -> tuple[int, int]:
    calls = ProviderCall.objects.filter(run=run)
    return sum(c.input_tokens for c in calls), sum(c.output_tokens for c in calls)


@pytest.mark.parametrize("bearer", [False, True])
def test_it_answers_a_pool_in_the_messages_format(
    live_stack: Stack, alice, workspace, bearer: bool
) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST])
    message = client(live_stack, token_for(alice, workspace), bearer=bearer).messages.create(
        model=f"fusion/{pool.slug}", max_tokens=200, messages=PROMPT, system="Be brief."
    )

    run = Run.objects.get()
    assert run.status == RunStatus.FINISHED and run.system_prompt == "Be brief."
    assert message.content[0].text == run.fused_text
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == usage_of(run)


@pytest.mark.parametrize("mode", [Mode.BEST_OF, Mode.MERGE])
def test_it_streams_a_pool(live_stack: Stack, alice, workspace, mode: str) -> None:
    pool = simulated_pool(
        workspace, alice, [FAST, FAST], mode=mode, judge="sim-judge@ttft=0.01,tps=300"
    )
    api = client(live_stack, token_for(alice, workspace))
    with api.messages.stream(
        model=f"fusion/{pool.slug}", max_tokens=200, messages=PROMPT
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_message()

    run = Run.objects.get()
    assert run.status == RunStatus.FINISHED
    assert final.content[0].text.strip() == run.fused_text.strip() != ""
    assert final.stop_reason == "end_turn" and final.id == f"msg_{run.pk.hex}"
    assert (final.usage.input_tokens, final.usage.output_tokens) == usage_of(run)
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert "content_block_delta" in events and "message_delta" in events


def test_it_streams_a_single_model(live_stack: Stack, alice, workspace) -> None:
    credential = sim_credential(workspace, alice)
    api = client(live_stack, token_for(alice, workspace))
    with api.messages.stream(
        model=f"{credential.label}/{FAST}", max_tokens=100, messages=PROMPT
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()

    run = Run.objects.get()
    assert text == run.fused_text and text.startswith("[simulated sim-fast")
    assert final.content[0].text == text
    assert final.usage.output_tokens == run.calls.get().output_tokens


def test_it_answers_a_single_model_whole_and_stops_at_max_tokens(
    live_stack: Stack, alice, workspace
) -> None:
    credential = sim_credential(workspace, alice)
    api = client(live_stack, token_for(alice, workspace))
    whole = api.messages.create(model=f"{credential.label}/{FAST}", max_tokens=100, messages=PROMPT)
    cut = api.messages.create(model=f"{credential.label}/{FAST}", max_tokens=3, messages=PROMPT)

    first, second = Run.objects.order_by("created_at")
    assert whole.content[0].text == first.fused_text and whole.stop_reason == "end_turn"
    assert (whole.usage.input_tokens, whole.usage.output_tokens) == usage_of(first)
    assert cut.stop_reason == "max_tokens" and cut.usage.output_tokens == 3
    assert cut.content[0].text == second.fused_text


def test_it_raises_the_sdks_error_types(live_stack: Stack, alice, workspace) -> None:
    with pytest.raises(anthropic.AuthenticationError):
        client(live_stack, "fw_wrong-token-for-sure").messages.create(
            model="fusion/x", max_tokens=10, messages=PROMPT
        )
    api = client(live_stack, token_for(alice, workspace))
    with pytest.raises(anthropic.NotFoundError):
        api.messages.create(model="fusion/nope", max_tokens=10, messages=PROMPT)
    with pytest.raises(anthropic.BadRequestError):
        api.messages.create(model="fusion/nope", max_tokens=10, messages=[])
