"""Refusals answered before anything runs, in both wire formats (no worker needed)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from django.test import Client

from tests.workbench.gateway.helpers import FAST, sim_credential, token_for
from tests.workbench.runs.helpers import simulated_pool
from workbench.runs.models import Run
from workbench.tokens.models import ApiToken
from workbench.usage.budgets import budget_set

pytestmark = pytest.mark.django_db


def chat(token: str, body: dict, path: str = "/v1/chat/completions") -> tuple[int, dict]:
    response = Client().post(
        path, data=json.dumps(body), content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )  # fmt: skip
    return response.status_code, response.json()


def body(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_it_answers_in_the_openai_error_shape(alice, workspace) -> None:
    status, data = chat("fw_bogus-bogus-bogus-bogus", body("fusion/x"))
    assert status == 401
    assert set(data["error"]) == {"message", "type", "param", "code"}
    token = token_for(alice, workspace)
    assert chat(token, body("fusion/x"))[0] == 404
    assert chat(token, {"model": "fusion/x"})[0] == 400
    assert chat(token, body("fusion/x", n=3))[0] == 400
    status, data = chat(token, {**body("fusion/x"), "messages": [{"role": "tool", "content": "x"}]})
    assert status == 400 and data["error"]["param"] == "messages[0].role"


def test_it_answers_in_the_anthropic_error_shape(alice, workspace) -> None:
    status, data = chat(token_for(alice, workspace), body("fusion/x"), "/anthropic/v1/messages")
    assert status == 400 and data["type"] == "error"
    assert data["error"]["type"] == "invalid_request_error"  # max_tokens is required


def test_it_refuses_over_the_rate_limit_with_429(alice, workspace) -> None:
    # Five requests well inside one 60 s window (the window slides: see test_ratelimit).
    token = token_for(alice, workspace)
    ApiToken.objects.update(rate_per_minute=3)
    responses = [
        Client().post(
            "/v1/chat/completions", data=json.dumps(body("fusion/x")),
            content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        for _ in range(5)
    ]  # fmt: skip
    assert [r.status_code for r in responses] == [404, 404, 404, 429, 429]
    assert int(responses[-1]["Retry-After"]) >= 1
    assert responses[-1].json()["error"]["type"] == "rate_limit_error"


def test_it_refuses_over_the_pools_run_cap_with_402(alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST], budget_usd=Decimal("0.0001"))
    status, data = chat(token_for(alice, workspace), body(f"fusion/{pool.slug}"))
    assert status == 402 and data["error"]["code"] == "over_run_cap"
    assert not Run.objects.exists()


def test_it_refuses_over_the_monthly_budget_with_402(alice, workspace) -> None:
    pool = simulated_pool(workspace, alice, [FAST, FAST])
    budget_set(workspace=workspace, monthly_usd=Decimal(0), per_user_monthly_usd=None)
    token = token_for(alice, workspace)
    status, data = chat(token, body(f"fusion/{pool.slug}"))
    assert status == 402 and data["error"]["code"] == "budget_exceeded"
    credential = pool.members.first().credential
    assert chat(token, body(f"{credential.label}/{FAST}"))[0] == 402
    assert not Run.objects.exists()


def test_it_refuses_a_model_without_a_price_under_a_cap_with_402(alice, workspace) -> None:
    # Counted as $0 it would slip past any cap: refused before a call is made.
    sim_credential(workspace, alice, label="sim")
    budget_set(workspace=workspace, monthly_usd=Decimal(100), per_user_monthly_usd=None)
    status, data = chat(token_for(alice, workspace), body("sim/mystery-model"))
    assert status == 402 and data["error"]["code"] == "budget_unpriced"
    assert "mystery-model" in data["error"]["message"] and not Run.objects.exists()
