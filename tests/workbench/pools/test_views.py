"""Pool pages for alice (owner), bob (member), vera (viewer) and charlie (outsider)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from workbench.accounts.models import Workspace
from workbench.keys.models import Credential
from workbench.keys.services import credential_delete
from workbench.pools.inputs import JudgeInput, MemberInput
from workbench.pools.models import Pool

pytestmark = pytest.mark.django_db


def _url(name: str, workspace: Workspace, **kwargs: Any) -> str:
    return reverse(f"pools:{name}", kwargs={"ws": workspace.slug, **kwargs})


def _form(credential: Credential, members: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """What the editor posts: the pool's fields and a formset of member rows."""
    data: dict[str, Any] = {
        "name": "Posted pool",
        "mode": "merge",
        "rounds": "1",
        "debate_judge": "merge",
        "judge_credential": str(credential.pk),
        "judge_model": "sim-judge",
        "judge_temperature": "0",
        "members-TOTAL_FORMS": str(len(members)),
        "members-INITIAL_FORMS": "0",
        "members-MIN_NUM_FORMS": "0",
        "members-MAX_NUM_FORMS": "64",
    }
    for i, member in enumerate(members):
        row = {"credential": str(credential.pk), "temperature": "", "max_tokens": ""} | member
        data |= {f"members-{i}-{key}": value for key, value in row.items()}
    return data | fields


def test_it_lists_pools_for_members_only(
    workspace: Workspace,
    make_pool: Callable[..., Pool],
    alice_client: Client,
    bob_client: Client,
    vera_client: Client,
    charlie_client: Client,
) -> None:
    make_pool()
    for client in (alice_client, bob_client, vera_client):
        page = client.get(_url("index", workspace)).content.decode()
        assert "Trio" in page
    assert charlie_client.get(_url("index", workspace)).status_code == 404


def test_it_keeps_every_pool_route_from_outsiders_and_viewers(
    workspace: Workspace,
    make_pool: Callable[..., Pool],
    vera_client: Client,
    charlie_client: Client,
) -> None:
    pool = make_pool()
    slug = {"pool": pool.slug}
    for name, kwargs, method in [
        ("create", {}, "get"),
        ("edit", slug, "get"),
        ("clone", slug, "post"),
        ("delete", slug, "post"),
    ]:
        url = _url(name, workspace, **kwargs)
        assert getattr(charlie_client, method)(url).status_code == 404, name
        assert getattr(vera_client, method)(url).status_code == 403, name
    assert vera_client.get(_url("detail", workspace, **slug)).status_code == 200
    assert charlie_client.get(_url("detail", workspace, **slug)).status_code == 404
    assert Pool.objects.count() == 1


def test_it_creates_a_pool_from_the_editor(
    workspace: Workspace, sim: Credential, bob_client: Client
) -> None:
    data = _form(
        sim,
        [
            {"model": "sim-fast", "temperature": "0.2"},
            {"model": "sim-fast", "temperature": "1.0", "system_prompt": "A sceptic."},
            {"model": "sim-slow", "DELETE": "on"},  # removed in the browser
        ],
    )
    response = bob_client.post(_url("create", workspace), data)
    pool = Pool.objects.get()
    assert response.status_code == 302
    assert response["Location"] == _url("detail", workspace, pool=pool.slug)
    members = list(pool.members.all())
    assert [(m.model, m.temperature) for m in members] == [("sim-fast", 0.2), ("sim-fast", 1.0)]
    assert members[1].system_prompt == "A sceptic."


def test_it_shows_service_errors_next_to_the_fields(
    workspace: Workspace, sim: Credential, alice_client: Client
) -> None:
    data = _form(
        sim, [{"model": "sim-fast"}, {"model": "gpt-9"}], judge_credential="", judge_model=""
    )
    response = alice_client.post(_url("create", workspace), data)
    page = response.content.decode()
    assert response.status_code == 200
    assert "gpt-9 is not in the catalog of Sim" in page
    assert "Merge needs a judge" in page
    assert not Pool.objects.exists()


def test_it_prefills_the_editor_from_a_preset(
    workspace: Workspace, sim: Credential, alice_client: Client
) -> None:
    page = alice_client.get(_url("create", workspace), {"preset": "quality"}).content.decode()
    assert 'value="sim-slow"' in page
    page = alice_client.get(
        _url("create", workspace), {"preset": "self", "model": f"{sim.pk}:sim-fast", "n": "3"}
    ).content.decode()
    assert len(re.findall(r'name="members-\d+-model" value="sim-fast"', page)) == 3
    assert 'value="0.6"' in page


def test_it_shows_the_itemised_estimate_and_warns_about_unpriced_models(
    workspace: Workspace,
    make_pool: Callable[..., Pool],
    sim: Credential,
    local: Credential,
    bob_client: Client,
) -> None:
    pool = make_pool(
        members=[
            MemberInput(credential_id=sim.pk, model="sim-fast"),
            MemberInput(credential_id=local.pk, model="llama-local"),
        ]
    )
    page = bob_client.get(_url("detail", workspace, pool=pool.slug)).content.decode()
    assert "Cost per run" in page
    assert "Judge: scoring" in page
    assert "No price for member llama-local" in page
    assert "+ unpriced" in page


def test_it_edits_a_pool(
    workspace: Workspace, make_pool: Callable[..., Pool], sim: Credential, bob_client: Client
) -> None:
    pool = make_pool()
    page = bob_client.get(_url("edit", workspace, pool=pool.slug)).content.decode()
    assert 'value="sim-balanced"' in page
    data = _form(sim, [{"model": "sim-fast"}, {"model": "sim-slow"}], name="Duo", slug="duo")
    data["members-INITIAL_FORMS"] = "2"
    response = bob_client.post(_url("edit", workspace, pool=pool.slug), data)
    assert response.status_code == 302
    assert response["Location"] == _url("detail", workspace, pool="duo")
    pool.refresh_from_db()
    assert (pool.name, pool.mode, pool.members.count()) == ("Duo", "merge", 2)


def test_it_clones_and_deletes(
    workspace: Workspace,
    make_pool: Callable[..., Pool],
    alice_client: Client,
    bob_client: Client,
) -> None:
    pool = make_pool()
    response = bob_client.post(_url("clone", workspace, pool=pool.slug))
    copy = Pool.objects.exclude(pk=pool.pk).get()
    assert response["Location"] == _url("edit", workspace, pool=copy.slug)
    # Bob made the copy, so he may delete it; alice's original only she (or an admin) may.
    assert bob_client.post(_url("delete", workspace, pool=pool.slug)).status_code == 403
    assert bob_client.post(_url("delete", workspace, pool=copy.slug)).status_code == 302
    assert alice_client.post(_url("delete", workspace, pool=pool.slug)).status_code == 302
    assert not Pool.objects.exists()


def test_it_shows_what_is_broken_when_a_credential_is_gone(
    workspace: Workspace,
    make_pool: Callable[..., Pool],
    sim: Credential,
    alice_client: Client,
) -> None:
    pool = make_pool(judge=JudgeInput(credential_id=sim.pk, model="sim-judge"))
    credential_delete(credential=sim, user=pool.created_by)
    page = alice_client.get(_url("detail", workspace, pool=pool.slug)).content.decode()
    assert "cannot run as it is" in page
    assert "Member 1: Choose a credential." in page
    assert "deleted" in page


def test_it_lists_pools_on_the_workspace_home(
    workspace: Workspace,
    make_pool: Callable[..., Pool],
    alice_client: Client,
    vera_client: Client,
) -> None:
    home = reverse("accounts:workspace_home", kwargs={"ws": workspace.slug})
    assert "No pools yet" in alice_client.get(home).content.decode()
    pool = make_pool()
    page = alice_client.get(home).content.decode()
    assert "No pools yet" not in page
    assert pool.name in page and _url("detail", workspace, pool=pool.slug) in page
    assert f"?pool={pool.slug}" in page  # a member can run it from the home page
    viewer_page = vera_client.get(home).content.decode()
    assert pool.name in viewer_page and f"?pool={pool.slug}" not in viewer_page


def test_it_turns_blind_judging_on_in_the_editor_and_shows_it(
    workspace: Workspace, sim: Credential, bob_client: Client
) -> None:
    data = _form(sim, [{"model": "sim-fast"}, {"model": "sim-slow"}], blind_mode="on")
    assert bob_client.post(_url("create", workspace), data).status_code == 302
    pool = Pool.objects.get()
    assert pool.blind_mode is True
    page = bob_client.get(_url("detail", workspace, pool=pool.slug)).content.decode()
    assert "names hidden until each person picks" in page
    editor = bob_client.get(_url("edit", workspace, pool=pool.slug)).content.decode()
    assert re.search(r'<input[^>]*name="blind_mode"[^>]*checked', editor)
    data = _form(sim, [{"model": "sim-fast"}, {"model": "sim-slow"}])  # unticked
    bob_client.post(_url("edit", workspace, pool=pool.slug), data)
    pool.refresh_from_db()
    assert pool.blind_mode is False
