from __future__ import annotations

import re

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


def _form(dataset, pool, **extra) -> dict:
    return {"dataset": dataset.pk, "pool_modes": [f"{pool.pk}:{pool.mode}"],
            "include_solos": "on", "samples": 5, "concurrency": 4, **extra}  # fmt: skip


def _token(page: str) -> str:
    found = re.search(r'name="estimate_token" value="([0-9a-f]+)"', page)
    assert found, "the estimate's token is not on the page"
    return found.group(1)


def test_it_shows_the_estimate_before_the_start_button(bob_client, workspace, dataset, pool):
    url = f"/w/{workspace.slug}/experiments/new/"
    first = bob_client.get(url).content.decode()
    assert 'data-testid="start"' not in first
    estimated = bob_client.post(url, {**_form(dataset, pool), "action": "estimate"})
    page = estimated.content.decode()
    assert 'data-testid="start"' in page and "≤ $" in page
    assert Experiment.objects.count() == 0
    response = bob_client.post(
        url, {**_form(dataset, pool), "action": "start", "estimate_token": _token(page)}
    )
    assert response.status_code == 302
    assert Experiment.objects.get().arms.count() == 3


def test_it_refuses_a_start_that_skips_or_outdates_the_estimate(
    bob_client, workspace, dataset, pool
):
    url = f"/w/{workspace.slug}/experiments/new/"
    skipped = bob_client.post(url, {**_form(dataset, pool), "action": "start"})
    assert skipped.status_code == 200 and "Estimate the cost first" in skipped.content.decode()
    # The refusal shows the estimate, so the next click can start on it.
    assert 'data-testid="start"' in skipped.content.decode()
    token = _token(
        bob_client.post(url, {**_form(dataset, pool), "action": "estimate"}).content.decode()
    )
    changed = bob_client.post(
        url,
        {**_form(dataset, pool), "self_consistency": "on", "action": "start",
         "estimate_token": token},
    )  # fmt: skip
    assert "out of date" in changed.content.decode()
    assert Experiment.objects.count() == 0


def test_it_hides_the_start_button_over_the_cap(bob_client, workspace, dataset, pool):
    url = f"/w/{workspace.slug}/experiments/new/"
    data = _form(dataset, pool, budget_usd="0.0001", action="estimate")
    page = bob_client.post(url, data).content.decode()
    assert "over the cap" in page and 'data-testid="start"' not in page
    started = bob_client.post(url, {**data, "action": "start", "estimate_token": _token(page)})
    assert "over the cap" in started.content.decode()
    assert Experiment.objects.count() == 0


def test_it_offers_every_pool_in_every_mode_and_needs_a_judge_for_fusing(
    bob_client, alice, workspace, dataset, pool
):
    from tests.workbench.runs.helpers import simulated_pool

    bare = simulated_pool(workspace, alice, ["sim-fast@tokens=5"], judge=None)
    url = f"/w/{workspace.slug}/experiments/new/"
    page = bob_client.get(url).content.decode()
    for value in (f"{pool.pk}:merge", f"{pool.pk}:debate", f"{bare.pk}:best_of"):
        assert f'value="{value}"' in page
    assert re.search(rf'value="{bare.pk}:merge"[^>]*disabled', page)
    both = {**_form(dataset, pool), "pool_modes": [f"{pool.pk}:best_of", f"{pool.pk}:merge",
            f"{bare.pk}:best_of"], "include_solos": "", "action": "estimate"}  # fmt: skip
    estimated = bob_client.post(url, both).content.decode()
    assert f"{pool.name} (merge)" in estimated and f"{bare.name} (best of)" in estimated
    forced = bob_client.post(url, {**both, "pool_modes": [f"{bare.pk}:debate"]}).content.decode()
    assert "needs one to fuse the answers" in forced


def test_it_puts_answers_awaiting_people_in_the_review_queue(
    alice, bob_client, vera_client, charlie_client, workspace, dataset, pool
):
    from tests.workbench.experiments.conftest import finish
    from workbench.experiments.arms import ArmChoice
    from workbench.experiments.services import experiment_advance, experiment_create

    experiment = experiment_create(
        workspace=workspace, user=alice, dataset=dataset,
        choice=ArmChoice(pool=pool, include_solos=False), concurrency=8,
    )  # fmt: skip
    url = f"/w/{workspace.slug}/curation/review/"
    assert 'data-testid="review-grading"' not in bob_client.get(url).content.decode()
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("run"):
        finish(result.run, fused="Waves fold on the shore / salt wind keeps the time.")
    experiment_advance(experiment_id=experiment.pk)
    page = bob_client.get(url).content.decode()
    assert 'data-testid="review-grading"' in page and "1 to grade" in page
    assert "Waves fold on the shore" in page and 'data-testid="grade-correct"' in page
    haiku = experiment.results.get(item__checker="human")
    assert f"/items/{haiku.pk}/grade/" in page
    # Viewers see what waits, without the buttons; outsiders see nothing.
    seen = vera_client.get(url).content.decode()
    assert "Waves fold on the shore" in seen and 'data-testid="grade-correct"' not in seen
    assert charlie_client.get(url).status_code == 404
    response = bob_client.post(
        f"/w/{workspace.slug}/experiments/{experiment.pk}/items/{haiku.pk}/grade/",
        {"correct": "1", "next": url},
    )
    assert response["Location"] == url
    assert 'data-testid="review-grading"' not in bob_client.get(url).content.decode()
