"""Who may see and do what on the runs pages: alice owns, bob is a member, vera a viewer,
charlie an outsider (404 everywhere, as if the workspace did not exist)."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from tests.workbench.runs.helpers import simulated_pool, start_run
from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.runs.models import Run, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(workspace: Workspace, alice: User) -> Run:
    return finished_run(workspace, alice)


def urls(workspace: Workspace, run: Run) -> dict[str, str]:
    base = f"/w/{workspace.slug}/runs/"
    return {
        "list": base,
        "detail": f"{base}{run.pk}/",
        "panels": f"{base}{run.pk}/panels/",
        "part": f"{base}{run.pk}/part/?key=m1/0",
    }


READ_PAGES = ["list", "detail", "panels", "part"]


@pytest.mark.parametrize("page", READ_PAGES)
@pytest.mark.parametrize("who", ["alice_client", "bob_client", "vera_client"])
def test_it_lets_every_member_read(
    request: pytest.FixtureRequest, who: str, page: str, workspace: Workspace, run: Run
) -> None:
    client: Client = request.getfixturevalue(who)
    assert client.get(urls(workspace, run)[page]).status_code == 200


@pytest.mark.parametrize("page", [*READ_PAGES, "new"])
def test_it_hides_everything_from_an_outsider(
    charlie_client: Client, page: str, workspace: Workspace, run: Run
) -> None:
    all_urls = {**urls(workspace, run), "new": f"/w/{workspace.slug}/runs/new/"}
    assert charlie_client.get(all_urls[page]).status_code == 404


@pytest.mark.parametrize("action", ["cancel", "rerun"])
def test_it_hides_writes_from_an_outsider(
    charlie_client: Client, action: str, workspace: Workspace, run: Run
) -> None:
    before = Run.objects.count()
    response = charlie_client.post(f"/w/{workspace.slug}/runs/{run.pk}/{action}/")
    assert response.status_code == 404
    assert Run.objects.count() == before


def test_it_sends_anonymous_people_to_log_in(
    client: Client, workspace: Workspace, run: Run
) -> None:
    response = client.get(f"/w/{workspace.slug}/runs/{run.pk}/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_it_answers_404_for_an_unknown_run(alice_client: Client, workspace: Workspace) -> None:
    assert alice_client.get(f"/w/{workspace.slug}/runs/{uuid.uuid4()}/").status_code == 404
    assert alice_client.get(f"/w/{workspace.slug}/runs/{uuid.uuid4()}/panels/").status_code == 404


def test_it_answers_404_for_another_workspaces_run_under_this_one(
    alice_client: Client, charlie: User, workspace: Workspace
) -> None:
    theirs = charlie.memberships.get().workspace
    other = finished_run(theirs, charlie)
    assert alice_client.get(f"/w/{workspace.slug}/runs/{other.pk}/").status_code == 404
    assert alice_client.get(f"/w/{theirs.slug}/runs/{other.pk}/").status_code == 404


def test_it_answers_404_for_an_unknown_part(
    alice_client: Client, workspace: Workspace, run: Run
) -> None:
    assert alice_client.get(f"/w/{workspace.slug}/runs/{run.pk}/part/?key=m9/0").status_code == 404
    assert alice_client.get(f"/w/{workspace.slug}/runs/{run.pk}/part/").status_code == 404


def test_it_forbids_a_viewer_to_start_a_run(
    vera_client: Client, workspace: Workspace, alice: User
) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast", "sim-slow"])
    assert vera_client.get(f"/w/{workspace.slug}/runs/new/").status_code == 403
    response = vera_client.post(
        f"/w/{workspace.slug}/runs/new/",
        {"source": "pool", "pool": pool.pk, "prompt": "Hello there"},
    )
    assert response.status_code == 403
    assert (
        vera_client.post(
            f"/w/{workspace.slug}/runs/new/estimate/", {"source": "pool", "pool": pool.pk}
        ).status_code
        == 403
    )
    assert not Run.objects.exists()


def test_it_forbids_a_viewer_to_cancel(
    vera_client: Client, workspace: Workspace, alice: User
) -> None:
    run = start_run(simulated_pool(workspace, alice, ["sim-fast"]), alice)
    response = vera_client.post(f"/w/{workspace.slug}/runs/{run.pk}/cancel/")
    assert response.status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
    assert not run.cancel_requested


def test_it_forbids_a_viewer_to_rerun(vera_client: Client, workspace: Workspace, run: Run) -> None:
    before = Run.objects.count()
    assert vera_client.post(f"/w/{workspace.slug}/runs/{run.pk}/rerun/").status_code == 403
    assert Run.objects.count() == before


def test_it_shows_a_viewer_no_buttons_that_would_be_refused(
    vera_client: Client, workspace: Workspace, run: Run
) -> None:
    html = vera_client.get(f"/w/{workspace.slug}/runs/{run.pk}/").content.decode()
    assert 'data-testid="rerun"' not in html
    assert 'data-testid="cancel"' not in html
    listing = vera_client.get(f"/w/{workspace.slug}/runs/").content.decode()
    assert 'data-testid="new-run"' not in listing


def test_it_refuses_a_get_on_cancel(bob_client: Client, workspace: Workspace, alice: User) -> None:
    run = start_run(simulated_pool(workspace, alice, ["sim-fast"]), alice)
    assert bob_client.get(f"/w/{workspace.slug}/runs/{run.pk}/cancel/").status_code == 405
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED
