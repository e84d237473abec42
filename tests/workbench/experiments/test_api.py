from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.workbench.runs.helpers import simulated_pool
from workbench.experiments.models import Dataset, Experiment


def test_it_reports_bad_lines_of_an_upload_and_imports_nothing(bob_client, workspace) -> None:
    upload = SimpleUploadedFile("t.jsonl", b'{"prompt": "ok", "expected": "1"}\n{"prompt": ""}\n')
    response = bob_client.post(f"/api/v1/workspaces/{workspace.slug}/datasets", {"file": upload})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "bad_file"
    assert body["errors"] == [
        {"field": "file", "message": "Line 2: the prompt is missing or empty"}
    ]
    assert Dataset.objects.count() == 0


def test_it_uploads_a_dataset_and_lists_it(bob_client, workspace) -> None:
    upload = SimpleUploadedFile("t.csv", b"prompt,expected\n2+2?,4\n")
    response = bob_client.post(
        f"/api/v1/workspaces/{workspace.slug}/datasets", {"file": upload, "name": "Sums"}
    )
    assert response.status_code == 201, response.content
    assert response.json()["item_count"] == 1
    listed = bob_client.get(f"/api/v1/workspaces/{workspace.slug}/datasets").json()
    assert [d["name"] for d in listed] == ["Sums"]


def _post(client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


def test_it_estimates_then_creates_reads_and_controls_an_experiment(
    bob_client, workspace, dataset, pool
) -> None:
    base = f"/api/v1/workspaces/{workspace.slug}/experiments"
    body = {"dataset_id": dataset.pk, "pool": pool.slug, "self_consistency": True, "samples": 3}
    estimate = _post(bob_client, f"{base}/estimate", body)
    assert estimate.status_code == 200, estimate.content
    shown = estimate.json()
    assert [a["kind"] for a in shown["arms"]] == ["pool", "solo", "solo", "self_consistency"]
    assert shown["runs"] == 12 and float(shown["total_usd"]) > 0 and shown["estimate_token"]
    assert Experiment.objects.count() == 0  # an estimate starts nothing
    response = _post(bob_client, base, {**body, "estimate_token": shown["estimate_token"]})
    assert response.status_code == 201, response.content
    created = response.json()
    assert [a["kind"] for a in created["arms"]] == ["pool", "solo", "solo", "self_consistency"]
    assert created["progress"]["total"] == 12 and created["status"] == "running"
    assert created["estimated_cost"] == shown["total_usd"]
    experiment_id = created["id"]
    assert bob_client.post(f"{base}/{experiment_id}/pause").json()["status"] == "paused"
    assert bob_client.post(f"{base}/{experiment_id}/pause").status_code == 400
    assert bob_client.post(f"{base}/{experiment_id}/resume").json()["status"] == "running"
    results = bob_client.get(f"{base}/{experiment_id}/results").json()
    assert len(results["arms"]) == 4 and len(results["comparisons"]) == 6
    assert results["correction"] == "holm-bonferroni"
    assert bob_client.post(f"{base}/{experiment_id}/cancel").json()["status"] == "cancelled"


def test_it_refuses_to_start_without_a_current_estimate(
    bob_client, workspace, dataset, pool
) -> None:
    base = f"/api/v1/workspaces/{workspace.slug}/experiments"
    body = {"dataset_id": dataset.pk, "pool": pool.slug}
    missing = _post(bob_client, base, body)
    assert missing.status_code == 400 and missing.json()["code"] == "estimate_required"
    token = _post(bob_client, f"{base}/estimate", body).json()["estimate_token"]
    # The token stands for these arms: more arms than were estimated are refused.
    more = _post(bob_client, base, {**body, "self_fusion": True, "estimate_token": token})
    assert more.status_code == 400 and more.json()["code"] == "estimate_stale"
    forged = _post(bob_client, base, {**body, "estimate_token": "0" * 40})
    assert forged.json()["code"] == "estimate_stale"
    assert Experiment.objects.count() == 0
    assert _post(bob_client, base, {**body, "estimate_token": token}).status_code == 201


def test_it_runs_pools_in_the_modes_asked_for(bob_client, alice, workspace, dataset) -> None:
    judged = simulated_pool(workspace, alice, ["sim-fast@tokens=5"], judge="sim-judge")
    bare = simulated_pool(workspace, alice, ["sim-slow@tokens=5"], judge=None)
    base = f"/api/v1/workspaces/{workspace.slug}/experiments"
    body = {
        "dataset_id": dataset.pk,
        "include_solos": False,
        "pools": [
            {"pool": judged.slug, "modes": ["best_of", "merge", "debate"]},
            {"pool": str(bare.pk), "modes": []},
        ],
    }
    shown = _post(bob_client, f"{base}/estimate", body).json()
    labels = [a["label"] for a in shown["arms"]]
    assert labels == [f"{judged.name} (best of)", f"{judged.name} (merge)",
                      f"{judged.name} (debate)", f"{bare.name} (best of)"]  # fmt: skip
    created = _post(bob_client, base, {**body, "estimate_token": shown["estimate_token"]})
    assert created.status_code == 201, created.content
    modes = [a.config["spec"]["mode"] for a in Experiment.objects.get().arms.all()]
    assert modes == ["best_of", "merge", "debate", "best_of"]
    # Merge needs a judge the second pool does not have.
    refused = _post(bob_client, f"{base}/estimate",
                    {**body, "pools": [{"pool": bare.slug, "modes": ["merge"]}]})  # fmt: skip
    assert refused.status_code == 400 and refused.json()["code"] == "needs_judge"


def test_it_refuses_an_experiment_over_its_cap(bob_client, workspace, dataset, pool) -> None:
    base = f"/api/v1/workspaces/{workspace.slug}/experiments"
    body = {"dataset_id": dataset.pk, "pool": str(pool.pk), "budget_usd": "0.000001"}
    token = _post(bob_client, f"{base}/estimate", body).json()["estimate_token"]
    response = _post(bob_client, base, {**body, "estimate_token": token})
    assert response.status_code == 400 and response.json()["code"] == "over_budget"
    assert Experiment.objects.count() == 0
