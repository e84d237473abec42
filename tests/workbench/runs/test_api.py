"""/api/v1/workspaces/{ws}/runs: the same rules as the pages, in JSON."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.test import Client

from tests.workbench.runs.helpers import simulated_pool, start_run
from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.pools.models import Pool
from workbench.runs.models import Run, RunSource, RunStatus

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def pool(workspace: Workspace, alice: User) -> Pool:
    return simulated_pool(workspace, alice, ["sim-fast", "sim-slow"])


def api(workspace: Workspace, path: str = "") -> str:
    return f"/api/v1/workspaces/{workspace.slug}/runs{path}"


def assert_error(response: object, status: int, code: str) -> dict:
    assert response.status_code == status, response.content  # type: ignore[attr-defined]
    body = response.json()  # type: ignore[attr-defined]
    assert set(body) == {"detail", "code", "errors"}
    assert body["code"] == code
    return body


# --- create ---------------------------------------------------------------------------------


def test_it_creates_a_run_on_a_pool_by_slug(
    bob_client: Client, workspace: Workspace, pool: Pool, bob: User
) -> None:
    response = bob_client.post(
        api(workspace), {"pool": pool.slug, "prompt": "Why?", "system_prompt": "Short."}, JSON
    )
    assert response.status_code == 201, response.content
    body = response.json()
    run = Run.objects.get()
    assert body["id"] == str(run.pk)
    assert body["status"] == "queued" and body["source"] == "api"
    assert body["pool"] == {"id": pool.pk, "slug": pool.slug, "name": pool.name}
    assert [c["model"] for c in body["candidates"]] == ["sim-fast", "sim-slow"]
    assert all(c["simulated"] for c in body["candidates"])
    assert isinstance(body["estimated_cost"], str) and Decimal(body["estimated_cost"]) > 0
    assert body["url"].endswith(f"/w/{workspace.slug}/runs/{run.pk}/")
    assert run.created_by == bob and run.source == RunSource.API
    assert run.system_prompt == "Short."


def test_it_creates_a_run_on_a_pool_by_id(
    bob_client: Client, workspace: Workspace, pool: Pool
) -> None:
    response = bob_client.post(api(workspace), {"pool": str(pool.pk), "prompt": "Hi"}, JSON)
    assert response.status_code == 201
    assert Run.objects.get().pool == pool


def test_it_refuses_a_viewer_and_creates_nothing(
    vera_client: Client, workspace: Workspace, pool: Pool
) -> None:
    response = vera_client.post(api(workspace), {"pool": pool.slug, "prompt": "Hi"}, JSON)
    assert_error(response, 403, "forbidden")
    assert not Run.objects.exists()


def test_it_hides_the_workspace_from_an_outsider(
    charlie_client: Client, workspace: Workspace, pool: Pool
) -> None:
    response = charlie_client.post(api(workspace), {"pool": pool.slug, "prompt": "Hi"}, JSON)
    assert_error(response, 404, "not_found")
    assert_error(charlie_client.get(api(workspace)), 404, "not_found")
    assert not Run.objects.exists()


def test_it_says_which_pool_it_does_not_know(bob_client: Client, workspace: Workspace) -> None:
    body = assert_error(
        bob_client.post(api(workspace), {"pool": "nope", "prompt": "Hi"}, JSON), 400, "unknown_pool"
    )
    assert body["errors"][0]["field"] == "pool"


def test_it_refuses_a_prompt_over_the_limit_and_creates_nothing(
    bob_client: Client, workspace: Workspace, pool: Pool, settings: object
) -> None:
    settings.FUSION_MAX_PROMPT_CHARS = 100  # type: ignore[attr-defined]
    response = bob_client.post(api(workspace), {"pool": pool.slug, "prompt": "x" * 101}, JSON)
    body = assert_error(response, 400, "invalid")
    assert body["errors"] == [{"field": "prompt", "message": body["detail"]}]
    assert "the limit is 100" in body["detail"]
    assert not Run.objects.exists()


def test_it_validates_the_body(bob_client: Client, workspace: Workspace) -> None:
    body = assert_error(
        bob_client.post(api(workspace), {"prompt": "Hi"}, JSON), 422, "validation_error"
    )
    assert any(e["field"] == "pool" for e in body["errors"])


# --- read -------------------------------------------------------------------------------------


def test_it_returns_the_full_state_with_costs_as_strings(
    vera_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, winner="m2")
    response = vera_client.get(api(workspace, f"/{run.pk}"))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "finished" and body["winner"] == "m2"
    assert body["winner_model"] == "sim-balanced"
    assert [c["member"] for c in body["candidates"]] == ["m1", "m2", "m3"]
    first = body["candidates"][0]
    assert first["text"] == "Answer **1** from sim-fast."
    assert first["cost"] == "0.00012" and first["simulated"] is True
    assert body["verdict"]["scores"] == {"m1": 6.0, "m2": 7.0, "m3": 8.0}
    assert len(body["calls"]) == 4
    assert body["call_totals"] == {
        "calls": 4, "input_tokens": 360, "output_tokens": 180, "cost": "0.00077", "unpriced": False,
    }  # fmt: skip
    assert body["totals"]["cost"] == "0.00077"
    assert body["seq"] == 42


def test_it_marks_unpriced_calls_with_null(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, unpriced_call=True)
    body = alice_client.get(api(workspace, f"/{run.pk}")).json()
    assert body["calls"][-1]["cost"] is None
    assert body["call_totals"]["unpriced"] is True


def test_it_answers_404_for_unknown_and_foreign_runs(
    alice_client: Client, workspace: Workspace, charlie: User
) -> None:
    assert_error(alice_client.get(api(workspace, f"/{uuid.uuid4()}")), 404, "not_found")
    theirs = finished_run(charlie.memberships.get().workspace, charlie)
    assert_error(alice_client.get(api(workspace, f"/{theirs.pk}")), 404, "not_found")


def test_it_hides_a_run_from_an_outsider(
    charlie_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    assert_error(charlie_client.get(api(workspace, f"/{run.pk}")), 404, "not_found")
    assert_error(charlie_client.post(api(workspace, f"/{run.pk}/rerun")), 404, "not_found")


# --- list -------------------------------------------------------------------------------------


def test_it_lists_newest_first_with_pages(
    vera_client: Client, workspace: Workspace, alice: User, pool: Pool
) -> None:
    runs = [start_run(pool, alice, prompt=f"q{i}") for i in range(5)]
    body = vera_client.get(api(workspace), {"page_size": 2, "page": 2}).json()
    assert body["count"] == 5 and body["pages"] == 3 and body["page"] == 2
    newest_first = [str(r.pk) for r in sorted(runs, key=lambda r: r.created_at, reverse=True)]
    assert [r["id"] for r in body["results"]] == newest_first[2:4]


def test_it_lists_with_the_same_filters_as_the_page(
    alice_client: Client, workspace: Workspace, alice: User, bob: User, pool: Pool
) -> None:
    other = simulated_pool(workspace, alice, ["sim-balanced"])
    mine = start_run(pool, alice, prompt="About Bloom filters")
    theirs = start_run(other, bob, prompt="About tries")
    done = finished_run(workspace, alice, pool=pool, prompt="Finished one")

    def ids(**query: object) -> set[str]:
        response = alice_client.get(api(workspace), query)
        assert response.status_code == 200, response.content
        return {r["id"] for r in response.json()["results"]}

    assert ids(pool=other.slug) == {str(theirs.pk)}
    assert ids(pool=str(pool.pk)) == {str(mine.pk), str(done.pk)}
    assert ids(author="bob") == {str(theirs.pk)}
    assert ids(model="sim-balanced") == {str(theirs.pk)}
    assert ids(q="bloom") == {str(mine.pk)}
    assert ids(status="finished") == {str(done.pk)}
    assert ids(pool="no-such-pool") == set()


def test_it_refuses_an_unknown_status_filter(alice_client: Client, workspace: Workspace) -> None:
    assert_error(alice_client.get(api(workspace), {"status": "bogus"}), 400, "invalid_filter")


# --- cancel and rerun ---------------------------------------------------------------------


def test_it_cancels_for_a_member(
    bob_client: Client, workspace: Workspace, alice: User, pool: Pool
) -> None:
    run = start_run(pool, alice)
    response = bob_client.post(api(workspace, f"/{run.pk}/cancel"))
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED


def test_it_refuses_to_cancel_for_a_viewer(
    vera_client: Client, workspace: Workspace, alice: User, pool: Pool
) -> None:
    run = start_run(pool, alice)
    assert_error(vera_client.post(api(workspace, f"/{run.pk}/cancel")), 403, "forbidden")
    run.refresh_from_db()
    assert run.status == RunStatus.QUEUED


def test_it_says_an_ended_run_cannot_be_cancelled(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    body = assert_error(bob_client.post(api(workspace, f"/{run.pk}/cancel")), 400, "invalid")
    assert body["detail"] == "This run has already ended."


def test_it_reruns_for_a_member(bob_client: Client, workspace: Workspace, alice: User) -> None:
    run = finished_run(workspace, alice)
    response = bob_client.post(api(workspace, f"/{run.pk}/rerun"))
    assert response.status_code == 201
    body = response.json()
    assert body["rerun_of"] == str(run.pk) and body["status"] == "queued"
    assert body["created_by"] == "bob"
    assert Run.objects.count() == 2


def test_it_refuses_to_rerun_for_a_viewer(
    vera_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    assert_error(vera_client.post(api(workspace, f"/{run.pk}/rerun")), 403, "forbidden")
    assert Run.objects.count() == 1


def test_it_publishes_the_routes_in_the_openapi_schema(alice_client: Client) -> None:
    paths = alice_client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/workspaces/{ws}/runs" in paths
    assert "/api/v1/workspaces/{ws}/runs/{run_id}" in paths
    assert "/api/v1/workspaces/{ws}/runs/{run_id}/cancel" in paths
    assert "/api/v1/workspaces/{ws}/runs/{run_id}/rerun" in paths
