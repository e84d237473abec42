from __future__ import annotations

from django.core.files.uploadedfile import SimpleUploadedFile

from workbench.experiments.models import Dataset, Experiment


def test_it_shows_every_bad_line_of_an_upload_and_imports_nothing(bob_client, workspace):
    upload = SimpleUploadedFile(
        "t.jsonl", b'{"prompt": "fine", "expected": "1"}\n{"prompt": ""}\n{oops\n'
    )
    response = bob_client.post(
        f"/w/{workspace.slug}/experiments/datasets/upload/", {"file": upload}
    )
    assert response.status_code == 400
    text = response.content.decode()
    assert "Line 2: the prompt is missing or empty" in text
    assert "Line 3: not valid JSON" in text
    assert Dataset.objects.count() == 0


def test_it_shows_the_estimate_before_the_start_button(bob_client, workspace, dataset, pool):
    url = f"/w/{workspace.slug}/experiments/new/"
    data = {"dataset": dataset.pk, "pool": pool.pk, "include_pool": "on", "include_solos": "on",
            "samples": 5, "concurrency": 4}  # fmt: skip
    first = bob_client.get(url).content.decode()
    assert 'data-testid="start"' not in first
    estimated = bob_client.post(url, {**data, "action": "estimate"}).content.decode()
    assert 'data-testid="start"' in estimated and "≤ $" in estimated
    assert Experiment.objects.count() == 0
    response = bob_client.post(url, {**data, "action": "start"})
    assert response.status_code == 302
    assert Experiment.objects.get().arms.count() == 3


def test_it_hides_the_start_button_over_the_cap(bob_client, workspace, dataset, pool):
    url = f"/w/{workspace.slug}/experiments/new/"
    data = {"dataset": dataset.pk, "pool": pool.pk, "include_pool": "on", "samples": 5,
            "concurrency": 4, "budget_usd": "0.0001", "action": "estimate"}  # fmt: skip
    page = bob_client.post(url, data).content.decode()
    assert "over the cap" in page and 'data-testid="start"' not in page
    assert "over the cap" in bob_client.post(url, {**data, "action": "start"}).content.decode()
    assert Experiment.objects.count() == 0
