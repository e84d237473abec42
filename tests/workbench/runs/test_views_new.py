"""Starting a run from the page: on a pool, or on models picked ad hoc."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from tests.workbench.runs.helpers import simulated_pool
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, Scope
from workbench.keys.services import credential_create
from workbench.pools.models import Pool
from workbench.runs.models import Run, RunSource, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def pool(workspace: Workspace, alice: User) -> Pool:
    return simulated_pool(workspace, alice, ["sim-fast", "sim-balanced", "sim-slow"])


@pytest.fixture
def sim(workspace: Workspace, alice: User) -> Credential:
    return credential_create(
        workspace=workspace, user=alice, provider="simulated", label="Team sim",
        scope=Scope.WORKSPACE,
    )  # fmt: skip


def new_url(workspace: Workspace) -> str:
    return f"/w/{workspace.slug}/runs/new/"


def test_it_offers_the_workspaces_pools(
    bob_client: Client, workspace: Workspace, pool: Pool
) -> None:
    html = bob_client.get(new_url(workspace)).content.decode()
    assert f'<option value="{pool.pk}">{pool.name}</option>' in html
    assert 'data-testid="estimate"' in html


def test_it_preselects_a_pool_named_in_the_link(
    bob_client: Client, workspace: Workspace, pool: Pool
) -> None:
    html = bob_client.get(f"{new_url(workspace)}?pool={pool.slug}").content.decode()
    assert f'<option value="{pool.pk}" selected>' in html


def test_it_starts_a_run_on_a_pool_and_opens_its_page(
    bob_client: Client, workspace: Workspace, pool: Pool, bob: User
) -> None:
    response = bob_client.post(
        new_url(workspace),
        {
            "source": "pool",
            "pool": pool.pk,
            "prompt": "  Why is the sky blue?  ",
            "system_prompt": "Be brief.",
        },
    )
    run = Run.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/w/{workspace.slug}/runs/{run.pk}/"
    assert run.prompt == "Why is the sky blue?" and run.system_prompt == "Be brief."
    assert run.pool == pool and run.created_by == bob and run.source == RunSource.WEB
    assert run.status == RunStatus.QUEUED
    assert run.config["pool"]["id"] == pool.pk
    assert list(run.candidates.values_list("model", flat=True)) == [
        "sim-fast", "sim-balanced", "sim-slow",
    ]  # fmt: skip
    assert run.estimated_cost is not None and run.estimated_cost > 0


def test_it_keeps_the_prompt_and_says_why_when_it_is_too_long(
    bob_client: Client, workspace: Workspace, pool: Pool, settings: object
) -> None:
    settings.FUSION_MAX_PROMPT_CHARS = 200  # type: ignore[attr-defined]
    prompt = "word " * 60
    response = bob_client.post(
        new_url(workspace), {"source": "pool", "pool": pool.pk, "prompt": prompt}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert not Run.objects.exists()
    assert 'id="prompt-error"' in html
    assert "the limit is 200" in html
    assert prompt.strip() in html  # the text is kept in the textarea


def test_it_asks_for_a_prompt(bob_client: Client, workspace: Workspace, pool: Pool) -> None:
    response = bob_client.post(
        new_url(workspace), {"source": "pool", "pool": pool.pk, "prompt": " "}
    )
    assert "Write a prompt first." in response.content.decode()
    assert not Run.objects.exists()


def test_it_asks_for_a_pool(bob_client: Client, workspace: Workspace, pool: Pool) -> None:
    response = bob_client.post(new_url(workspace), {"source": "pool", "prompt": "Hi there"})
    assert "Choose a pool, or pick models." in response.content.decode()
    assert not Run.objects.exists()


def test_it_starts_a_run_on_models_picked_ad_hoc(
    bob_client: Client, workspace: Workspace, sim: Credential
) -> None:
    response = bob_client.post(
        new_url(workspace),
        {
            "source": "adhoc",
            "m0_credential": sim.pk, "m0_model": "sim-fast",
            "m2_credential": sim.pk, "m2_model": "sim-slow",
            "mode": "merge",
            "judge_credential": sim.pk, "judge_model": "sim-judge",
            "prompt": "Name three sorting algorithms.",
        },
    )  # fmt: skip
    run = Run.objects.get()
    assert response.status_code == 302
    assert run.pool is None and run.pool_name == "Ad hoc"
    assert run.mode == "merge"
    spec = run.config["spec"]
    assert [m["model"] for m in spec["members"]] == ["sim-fast", "sim-slow"]
    assert [m["id"] for m in spec["members"]] == ["m1", "m2"]
    assert spec["judge"]["model"] == "sim-judge"
    ref = f"cred:{sim.pk}"
    assert run.config["providers"][ref]["kind"] == "simulated"
    assert set(run.candidates.values_list("provider_kind", flat=True)) == {"simulated"}


def test_it_shows_ad_hoc_problems_next_to_their_row(
    bob_client: Client, workspace: Workspace, sim: Credential
) -> None:
    response = bob_client.post(
        new_url(workspace),
        {
            "source": "adhoc",
            "m1_credential": sim.pk,
            "m1_model": "",
            "mode": "merge",
            "prompt": "Hi",
        },
    )
    html = response.content.decode()
    assert not Run.objects.exists()
    assert "Member 1: Enter a model." in html
    assert "Judge: Merge needs a judge to fuse the answers." in html


def test_it_refuses_another_members_personal_credential_ad_hoc(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    private = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="Alice only",
        scope=Scope.PERSONAL,
    )  # fmt: skip
    response = bob_client.post(
        new_url(workspace),
        {"source": "adhoc", "m0_credential": private.pk, "m0_model": "sim-fast", "prompt": "Hi"},
    )
    assert response.status_code == 200
    assert "personal credential" in response.content.decode()
    assert not Run.objects.exists()


def test_it_refuses_a_run_over_the_pools_budget(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    tight = simulated_pool(workspace, alice, ["sim-fast", "sim-slow"], budget_usd=Decimal("0.0001"))
    response = bob_client.post(
        new_url(workspace), {"source": "pool", "pool": tight.pk, "prompt": "Hi"}
    )
    html = response.content.decode()
    assert "over the pool&#x27;s per-run cap" in html or "over the pool's per-run cap" in html
    assert not Run.objects.exists()


def test_it_estimates_the_cost_of_the_chosen_pool(
    bob_client: Client, workspace: Workspace, pool: Pool
) -> None:
    response = bob_client.post(
        f"/w/{workspace.slug}/runs/new/estimate/",
        {"source": "pool", "pool": pool.pk, "prompt": "Hello " * 100},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="estimate"' in html
    assert "sim-fast" in html and "sim-balanced" in html and "Judge" in html
    assert "$" in html


def test_it_says_what_to_choose_before_estimating(
    bob_client: Client, workspace: Workspace, pool: Pool
) -> None:
    response = bob_client.post(f"/w/{workspace.slug}/runs/new/estimate/", {"source": "pool"})
    assert "Choose a pool or pick models to see what a run may cost." in response.content.decode()


def test_it_refuses_a_run_with_an_unpriced_model_under_the_pools_budget(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    capped = simulated_pool(workspace, alice, ["sim-fast", "house-model"], budget_usd=Decimal("5"))
    response = bob_client.post(
        new_url(workspace), {"source": "pool", "pool": capped.pk, "prompt": "Hi"}
    )
    html = response.content.decode().replace("&#x27;", "'")
    assert "no price for house-model" in html and "cannot cover it" in html
    assert not Run.objects.exists()
