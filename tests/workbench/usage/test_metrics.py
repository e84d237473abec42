"""/metrics: Prometheus text behind METRICS_TOKEN, 404 while it is unset."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from tests.workbench.usage.test_usage_page import make_run
from workbench.accounts.services import workspace_create

pytestmark = pytest.mark.django_db


def test_it_is_absent_without_a_token_configured(settings) -> None:
    settings.METRICS_TOKEN = None
    assert Client().get("/metrics").status_code == 404


def test_it_refuses_a_wrong_token(settings) -> None:
    settings.METRICS_TOKEN = "s3cret-metrics"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 401


def test_it_serves_counters_and_histograms(settings, alice, workspace) -> None:
    settings.METRICS_TOKEN = "s3cret-metrics"
    make_run(workspace, alice, [{"cost": Decimal("0.25"), "latency_ms": 300.0},
                                {"cost": Decimal("0.25"), "latency_ms": 3000.0}])  # fmt: skip
    response = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'fusion_runs_total{status="finished",source="web"} 1' in text
    assert 'fusion_provider_calls_total{provider="openai",model="gpt-4o",status="ok"} 2' in text
    assert 'fusion_tokens_total{provider="openai",model="gpt-4o",direction="output"} 40' in text
    assert 'fusion_cost_usd_total{provider="openai",model="gpt-4o"} 0.5000000000' in text
    assert 'fusion_call_latency_seconds_bucket{provider="openai",model="gpt-4o",le="0.5"} 1' in text
    assert (
        'fusion_call_latency_seconds_bucket{provider="openai",model="gpt-4o",le="+Inf"} 2' in text
    )
    assert 'fusion_call_latency_seconds_sum{provider="openai",model="gpt-4o"} 3.300000' in text
    assert "# TYPE fusion_call_ttft_seconds histogram" in text


def test_it_sums_workspaces_by_provider_kind_without_their_labels_or_names(
    settings, alice, workspace, make_user
) -> None:
    # Two tenants' credentials, labelled in their own words: the scrape names neither.
    settings.METRICS_TOKEN = "s3cret-metrics"
    other = workspace_create(owner=make_user("olga"), name="Globex Secret Project")
    make_run(workspace, alice, [{"provider": "Claude key", "model": "claude-x"}])
    make_run(other, other.memberships.get().user, [{"provider": "Claude key", "model": "claude-x"}])

    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics").content.decode()

    assert (
        'fusion_provider_calls_total{provider="anthropic",model="claude-x",status="ok"} 2' in text
    )
    assert "Claude key" not in text and "globex" not in text.lower() and "acme" not in text
