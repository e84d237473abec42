"""The runs list's "a human picked a winner" filter, on the page and in the REST API."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.services import gold_answer_save, judgment_save
from workbench.runs.models import Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(workspace: Workspace, alice: User, bob: User, vera: User) -> dict[str, Run]:
    picked = finished_run(workspace, alice, prompt="picked by bob")
    judgment_save(run=picked, user=bob, choice="pick", winner="m1")
    both = finished_run(workspace, alice, prompt="picked and tied")
    judgment_save(run=both, user=alice, choice="tie")
    judgment_save(run=both, user=bob, choice="pick", winner="m2")
    tied = finished_run(workspace, alice, prompt="only tied")
    judgment_save(run=tied, user=bob, choice="tie")
    gold = finished_run(workspace, alice, prompt="only gold")
    gold_answer_save(run=gold, user=bob, text="Gold.")
    untouched = finished_run(workspace, alice, prompt="untouched")
    return {"picked": picked, "both": both, "tied": tied, "gold": gold, "untouched": untouched}


def listed(client: Client, workspace: Workspace, **params: str) -> set[str]:
    html = client.get(f"/w/{workspace.slug}/runs/", params).content.decode()
    return set(re.findall(r'<tr data-run="([0-9a-f-]+)">', html))


def ids(runs: dict[str, Run], *names: str) -> set[str]:
    return {str(runs[name].pk) for name in names}


def test_it_filters_the_runs_page_by_a_human_pick(
    vera_client: Client, workspace: Workspace, runs: dict[str, Run]
) -> None:
    assert listed(vera_client, workspace, picked="yes") == ids(runs, "picked", "both")
    assert listed(vera_client, workspace, picked="no") == ids(runs, "tied", "gold", "untouched")
    assert listed(vera_client, workspace) == ids(runs, *runs)
    assert listed(vera_client, workspace, picked="maybe") == ids(runs, *runs)  # ignored
    html = vera_client.get(f"/w/{workspace.slug}/runs/", {"picked": "yes"}).content.decode()
    assert '<option value="yes" selected>' in html and "Clear filters" in html


def test_it_filters_the_runs_api_by_a_human_pick(
    vera_client: Client, workspace: Workspace, runs: dict[str, Run]
) -> None:
    url = f"/api/v1/workspaces/{workspace.slug}/runs"

    def found(**params: str) -> set[str]:
        response = vera_client.get(url, params)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert found(picked="true") == ids(runs, "picked", "both")
    assert found(picked="false") == ids(runs, "tied", "gold", "untouched")
    assert found(picked="true", q="tied") == ids(runs, "both")
    assert vera_client.get(url, {"picked": "maybe"}).status_code == 422


def test_it_keeps_other_workspaces_out_of_the_filter(
    charlie_client: Client, workspace: Workspace, runs: dict[str, Run]
) -> None:
    assert charlie_client.get(f"/w/{workspace.slug}/runs/", {"picked": "yes"}).status_code == 404
