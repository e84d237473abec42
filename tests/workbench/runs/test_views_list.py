"""History: newest first, 25 a page, filters, times in the reader's zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.workbench.runs.helpers import simulated_pool, start_run
from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.runs.models import Run, RunStatus

pytestmark = pytest.mark.django_db


def listed(client: Client, workspace: Workspace, query: str = "") -> list[str]:
    response = client.get(f"/w/{workspace.slug}/runs/{query}")
    assert response.status_code == 200
    return re.findall(r'<tr data-run="([0-9a-f-]+)">', response.content.decode())


def test_it_lists_runs_newest_first_with_what_a_row_needs(
    vera_client: Client, workspace: Workspace, alice: User
) -> None:
    old = finished_run(workspace, alice, prompt="The older question")
    Run.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(hours=2))
    new = finished_run(workspace, alice, prompt="The newer question", winner="m3")
    assert listed(vera_client, workspace) == [str(new.pk), str(old.pk)]
    html = vera_client.get(f"/w/{workspace.slug}/runs/").content.decode()
    row = html[html.index(f'data-run="{new.pk}"') :].split("</tr>")[0]
    assert "The newer question" in row
    assert "Finished" in row
    assert new.pool.name in row
    assert "sim-slow" in row  # the winner's model
    assert "$0.00077" in row
    assert "1.2 s" in row
    assert "alice" in row


def test_it_shows_times_in_the_readers_zone(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    alice.time_zone = "Asia/Tokyo"
    alice.save()
    finished_run(workspace, alice, created_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    html = alice_client.get(f"/w/{workspace.slug}/runs/").content.decode()
    assert "Mar 2, 08:30" in html  # UTC+9


def test_it_pages_by_25(alice_client: Client, workspace: Workspace, alice: User) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast"])
    runs = [start_run(pool, alice, prompt=f"question {i}") for i in range(27)]
    first = listed(alice_client, workspace)
    second = listed(alice_client, workspace, "?page=2")
    assert len(first) == 25 and len(second) == 2
    assert set(first) | set(second) == {str(r.pk) for r in runs}


def test_it_keeps_the_filters_when_paging(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast"])
    for i in range(26):
        start_run(pool, alice, prompt=f"kept {i}")
    html = alice_client.get(f"/w/{workspace.slug}/runs/?q=kept").content.decode()
    assert "?q=kept&amp;page=2" in html


def test_it_filters_by_status(alice_client: Client, workspace: Workspace, alice: User) -> None:
    done = finished_run(workspace, alice)
    no_verdict = finished_run(workspace, alice, status=RunStatus.FINISHED_WITHOUT_VERDICT)
    failed = finished_run(workspace, alice, status=RunStatus.FAILED)
    assert set(listed(alice_client, workspace, "?status=finished")) == {
        str(done.pk),
        str(no_verdict.pk),
    }
    assert listed(alice_client, workspace, "?status=failed") == [str(failed.pk)]


def test_it_filters_by_pool_model_and_author(
    alice_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    fast = simulated_pool(workspace, alice, ["sim-fast"])
    slow = simulated_pool(workspace, alice, ["sim-slow"])
    a = start_run(fast, alice)
    b = start_run(slow, bob)
    assert listed(alice_client, workspace, f"?pool={fast.pk}") == [str(a.pk)]
    assert listed(alice_client, workspace, "?model=sim-slow") == [str(b.pk)]
    assert listed(alice_client, workspace, "?author=bob") == [str(b.pk)]


def test_it_searches_the_prompts(alice_client: Client, workspace: Workspace, alice: User) -> None:
    pool = simulated_pool(workspace, alice, ["sim-fast"])
    hit = start_run(pool, alice, prompt="How do Bloom filters work?")
    start_run(pool, alice, prompt="Explain quicksort")
    assert listed(alice_client, workspace, "?q=bloom+FILTERS") == [str(hit.pk)]


def test_it_filters_by_date_in_the_readers_zone(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    alice.time_zone = "America/New_York"
    alice.save()
    pool = simulated_pool(workspace, alice, ["sim-fast"])
    # 02:00 UTC on the 2nd is still the 1st in New York.
    late = start_run(pool, alice)
    Run.objects.filter(pk=late.pk).update(created_at=datetime(2026, 3, 2, 2, 0, tzinfo=UTC))
    later = start_run(pool, alice)
    Run.objects.filter(pk=later.pk).update(created_at=datetime(2026, 3, 2, 16, 0, tzinfo=UTC))
    day = "?date_from=2026-03-01&date_to=2026-03-01"
    assert listed(alice_client, workspace, day) == [str(late.pk)]
    assert listed(alice_client, workspace, "?date_from=2026-03-02") == [str(later.pk)]


def test_it_ignores_a_stale_filter_instead_of_failing(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    assert listed(alice_client, workspace, "?pool=999999&status=bogus") == [str(run.pk)]


def test_it_never_lists_another_workspaces_runs(
    alice_client: Client, workspace: Workspace, alice: User, charlie: User
) -> None:
    theirs = charlie.memberships.get().workspace
    finished_run(theirs, charlie)
    mine = finished_run(workspace, alice)
    assert listed(alice_client, workspace) == [str(mine.pk)]


def test_it_links_the_workspace_navigation_to_runs(
    bob_client: Client, workspace: Workspace
) -> None:
    html = bob_client.get(f"/w/{workspace.slug}/").content.decode()
    assert re.search(rf'<a href="/w/{workspace.slug}/runs/" class="[^"]*">Runs</a>', html)
    runs_page = bob_client.get(f"/w/{workspace.slug}/runs/").content.decode()
    assert re.search(rf'<a href="/w/{workspace.slug}/runs/" class="is-active"', runs_page)


def test_it_shows_recent_runs_on_the_workspace_home(
    vera_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, prompt="A question worth remembering")
    html = vera_client.get(f"/w/{workspace.slug}/").content.decode()
    card = html[html.index('data-testid="recent-runs"') :]
    assert f'href="/w/{workspace.slug}/runs/{run.pk}/"' in card
    assert "A question worth remembering" in card
    assert "New run" not in card[: card.index("</section>")]  # vera only reads


def test_it_says_there_are_no_runs_yet_on_the_home(
    bob_client: Client, workspace: Workspace
) -> None:
    html = bob_client.get(f"/w/{workspace.slug}/").content.decode()
    card = html[html.index('data-testid="recent-runs"') :]
    assert "No runs yet." in card
    assert f'href="/w/{workspace.slug}/runs/new/"' in card
