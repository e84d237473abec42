"""/api/v1/ pools: members and judge inline, itemised estimate, same access rules as pages."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from workbench.accounts.models import Workspace
from workbench.keys.models import Credential
from workbench.pools.models import Pool

pytestmark = pytest.mark.django_db


def _base(workspace: Workspace) -> str:
    return f"/api/v1/workspaces/{workspace.slug}/pools"


def _send(client: Client, method: str, url: str, body: Any) -> Any:
    return getattr(client, method)(url, data=json.dumps(body), content_type="application/json")


def _body(sim: Credential, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "API pool",
        "mode": "merge",
        "members": [
            {"credential_id": sim.pk, "model": "sim-fast", "temperature": 0.3},
            {"credential_id": sim.pk, "model": "sim-slow", "fallback_models": ["sim-balanced"]},
        ],
        "judge": {"credential_id": sim.pk, "model": "sim-judge", "swap_twice": True},
        "budget_usd": "0.50",
        **overrides,
    }


def test_it_creates_and_reads_a_pool_with_members_judge_and_estimate(
    workspace: Workspace, sim: Credential, bob_client: Client
) -> None:
    response = _send(bob_client, "post", _base(workspace), _body(sim))
    assert response.status_code == 201, response.content
    pool = response.json()
    assert pool["slug"] == "api-pool"
    assert [m["id"] for m in pool["members"]] == ["m1", "m2"]
    assert pool["members"][1]["fallback_models"] == ["sim-balanced"]
    assert pool["members"][0]["credential_label"] == "Sim"
    assert pool["judge"]["model"] == "sim-judge" and pool["judge"]["swap_twice"] is True
    assert pool["budget_usd"] == "0.5000"
    estimate = pool["estimate"]
    assert estimate["unpriced"] == []
    assert [line["label"] for line in estimate["lines"]][-1] == "Judge: synthesis"
    assert pool["problems"] == {}
    again = bob_client.get(f"{_base(workspace)}/api-pool").json()
    assert again["members"] == pool["members"]


def test_it_returns_every_validation_problem_with_its_field(
    workspace: Workspace, sim: Credential, alice_client: Client
) -> None:
    body = _body(sim, judge=None, members=[{"credential_id": sim.pk, "model": "nope"}])
    response = _send(alice_client, "post", _base(workspace), body)
    assert response.status_code == 400
    payload = response.json()
    assert payload["code"] == "invalid_pool"
    assert {e["field"] for e in payload["errors"]} == {"judge", "members.0.model"}
    response = _send(alice_client, "post", _base(workspace), {"name": "x", "mode": "vote"})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"mode", "members"}


def test_it_patches_replaces_clones_and_deletes(
    workspace: Workspace,
    sim: Credential,
    make_pool: Callable[..., Pool],
    alice_client: Client,
    bob_client: Client,
) -> None:
    make_pool()
    url = f"{_base(workspace)}/trio"
    patched = _send(bob_client, "patch", url, {"mode": "debate", "rounds": 2}).json()
    assert (patched["mode"], patched["rounds"], len(patched["members"])) == ("debate", 2, 3)
    replaced = _send(bob_client, "put", url, _body(sim, name="Renamed"))
    assert replaced.status_code == 200
    assert replaced.json()["slug"] == "trio"  # a PUT without a slug keeps it
    assert len(replaced.json()["members"]) == 2
    clone = bob_client.post(f"{url}/clone")
    assert clone.status_code == 201 and clone.json()["slug"] == "renamed-copy"
    assert bob_client.delete(url).status_code == 403  # alice's pool
    assert alice_client.delete(url).status_code == 204
    assert [p["slug"] for p in alice_client.get(_base(workspace)).json()] == ["renamed-copy"]


def test_it_hides_pools_from_outsiders_and_keeps_viewers_read_only(
    workspace: Workspace,
    sim: Credential,
    make_pool: Callable[..., Pool],
    vera_client: Client,
    charlie_client: Client,
) -> None:
    make_pool()
    url = f"{_base(workspace)}/trio"
    assert vera_client.get(url).status_code == 200
    assert _send(vera_client, "patch", url, {"name": "x"}).status_code == 403
    assert _send(vera_client, "post", _base(workspace), _body(sim)).status_code == 403
    assert vera_client.delete(url).status_code == 403
    for method, target in [("get", url), ("get", _base(workspace)), ("delete", url)]:
        assert getattr(charlie_client, method)(target).status_code == 404
    assert charlie_client.get(f"{_base(workspace)}/nope").status_code == 404


def test_it_sets_blind_judging_by_create_patch_and_keeps_it_in_a_clone(
    workspace: Workspace, sim: Credential, bob_client: Client
) -> None:
    created = _send(bob_client, "post", _base(workspace), _body(sim, blind_mode=True)).json()
    assert created["blind_mode"] is True
    url = f"{_base(workspace)}/{created['slug']}"
    assert _send(bob_client, "patch", url, {"description": "x"}).json()["blind_mode"] is True
    clone = bob_client.post(f"{url}/clone").json()
    assert clone["blind_mode"] is True
    assert _send(bob_client, "patch", url, {"blind_mode": False}).json()["blind_mode"] is False
    response = _send(bob_client, "patch", url, {"blind_mode": None})
    assert response.status_code == 422
    assert Pool.objects.get(slug=created["slug"]).blind_mode is False
