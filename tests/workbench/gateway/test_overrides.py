"""A request's ``temperature`` and ``max_tokens`` apply to every member of a pool for that run;
the judge keeps its own settings. Checked where it matters: in what the members' and the
judge's provider calls actually asked for (a loopback upstream records them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async

from fusion.testing.scripts import Script
from fusion.testing.upstream import Upstream
from tests.workbench.gateway.helpers import (
    PROMPT,
    eager_runs,
    post,
    remote_credential,
    serving,
    token_for,
)
from workbench.pools.inputs import JudgeInput, MemberInput, PoolInput
from workbench.pools.services import pool_create, pool_freeze
from workbench.runs.launch import config_estimate
from workbench.runs.models import Run, RunSource

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "sk-test-overrides-0000-3333"
VERDICT = '{"winner": "A", "scores": {"A": 8, "B": 6}, "rationale": "clearer", "confidence": 0.8}'


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with serving(Upstream(valid_keys=[KEY])) as up:
        up.script("gpt-4.1-mini", Script(text=VERDICT))
        yield up


def _pool(workspace, user, base_url: str):  # type: ignore[no-untyped-def]
    credential = remote_credential(workspace, user, base_url, [KEY])
    seat = {"credential_id": credential.pk, "custom_model": True, "temperature": 0.9,
            "max_tokens": 300}  # fmt: skip
    return pool_create(
        workspace=workspace,
        user=user,
        data=PoolInput(
            name="duo",
            members=[
                MemberInput(model="gpt-4o", **seat),
                MemberInput(model="gpt-4o-mini", **seat),
            ],
            judge=JudgeInput(
                credential_id=credential.pk, model="gpt-4.1-mini", custom_model=True,
                temperature=0.0, max_tokens=77,
            ),
        ),
    )  # fmt: skip


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/anthropic/v1/messages"])
async def test_it_applies_temperature_and_max_tokens_to_the_members_only(
    alice, workspace, upstream: Upstream, path: str
) -> None:
    pool = await sync_to_async(_pool)(workspace, alice, upstream.url)
    token = await sync_to_async(token_for)(alice, workspace)
    body = {"model": f"fusion/{pool.slug}", "messages": PROMPT, "temperature": 0.2,
            "max_tokens": 12}  # fmt: skip

    with eager_runs():
        reply = await post(path, body, token)

    assert reply.status == 200, reply.text
    for model in ("gpt-4o", "gpt-4o-mini"):
        (request,) = upstream.requests_for(model)
        assert (request.body["temperature"], request.body["max_tokens"]) == (0.2, 12)
    (judged,) = upstream.requests_for("gpt-4.1-mini")
    assert (judged.body["temperature"], judged.body["max_tokens"]) == (0.0, 77)
    run = await Run.objects.aget(pk=reply.headers["X-Fusion-Run-Id"])
    assert run.source == RunSource.GATEWAY and run.status == "finished"
    members = run.config["spec"]["members"]
    assert {(m["temperature"], m["max_tokens"]) for m in members} == {(0.2, 12)}
    # The reservation is the estimate of what was asked: 12 tokens a member, not 300.
    as_saved = await sync_to_async(
        lambda: config_estimate(pool_freeze(pool), prompt=run.prompt).priced_usd
    )()
    assert run.estimated_cost is not None and run.estimated_cost < as_saved


async def test_it_leaves_the_pools_settings_when_the_request_has_none(
    alice, workspace, upstream
) -> None:
    pool = await sync_to_async(_pool)(workspace, alice, upstream.url)
    token = await sync_to_async(token_for)(alice, workspace)

    with eager_runs():
        reply = await post(
            "/v1/chat/completions", {"model": f"fusion/{pool.slug}", "messages": PROMPT}, token
        )

    assert reply.status == 200
    (request,) = upstream.requests_for("gpt-4o")
    assert (request.body["temperature"], request.body["max_tokens"]) == (0.9, 300)
