from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

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


def test_it_creates_reads_and_controls_an_experiment(bob_client, workspace, dataset, pool) -> None:
    base = f"/api/v1/workspaces/{workspace.slug}/experiments"
    response = bob_client.post(
        base,
        {"dataset_id": dataset.pk, "pool": pool.slug, "self_consistency": True, "samples": 3},
        content_type="application/json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [a["kind"] for a in body["arms"]] == ["pool", "solo", "solo", "self_consistency"]
    assert body["progress"]["total"] == 12 and body["status"] == "running"
    experiment_id = body["id"]
    assert bob_client.post(f"{base}/{experiment_id}/pause").json()["status"] == "paused"
    assert bob_client.post(f"{base}/{experiment_id}/pause").status_code == 400
    assert bob_client.post(f"{base}/{experiment_id}/resume").json()["status"] == "running"
    results = bob_client.get(f"{base}/{experiment_id}/results").json()
    assert len(results["arms"]) == 4 and len(results["comparisons"]) == 6
    assert bob_client.post(f"{base}/{experiment_id}/cancel").json()["status"] == "cancelled"


def test_it_refuses_an_experiment_over_its_cap(bob_client, workspace, dataset, pool) -> None:
    response = bob_client.post(
        f"/api/v1/workspaces/{workspace.slug}/experiments",
        {"dataset_id": dataset.pk, "pool": str(pool.pk), "budget_usd": "0.000001"},
        content_type="application/json",
    )
    assert response.status_code == 400 and response.json()["code"] == "over_budget"
    assert Experiment.objects.count() == 0
