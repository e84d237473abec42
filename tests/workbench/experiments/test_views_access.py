"""Who may see and do what on the experiments pages and routes: alice owns, bob is a member,
vera a viewer (reads, 403 on writes), charlie an outsider (404 everywhere)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from workbench.experiments.arms import ArmChoice
from workbench.experiments.models import Dataset, Experiment, ExperimentStatus
from workbench.experiments.services import experiment_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def experiment(alice, workspace, dataset, pool) -> Experiment:
    return experiment_create(
        workspace=workspace, user=alice, dataset=dataset, choice=ArmChoice(pool=pool)
    )


def read_urls(workspace, experiment, dataset) -> dict[str, str]:
    base = f"/w/{workspace.slug}/experiments/"
    return {
        "index": base,
        "detail": f"{base}{experiment.pk}/",
        "grading": f"{base}{experiment.pk}/grade/",
        "live": f"{base}{experiment.pk}/live/",
        "csv": f"{base}{experiment.pk}/results.csv",
        "json": f"{base}{experiment.pk}/results.json",
        "dataset": f"{base}datasets/{dataset.pk}/",
        "api_datasets": f"/api/v1/workspaces/{workspace.slug}/datasets",
        "api_experiment": f"/api/v1/workspaces/{workspace.slug}/experiments/{experiment.pk}",
        "api_results": f"/api/v1/workspaces/{workspace.slug}/experiments/{experiment.pk}/results",
        "api_experiments": f"/api/v1/workspaces/{workspace.slug}/experiments",
    }


WRITES = ["pause", "cancel", "resume", "delete", "sample", "gold", "dataset_delete", "upload",
          "new", "grade", "api_pause", "api_cancel", "api_resume", "api_create", "api_estimate",
          "api_upload"]  # fmt: skip


def write(client: Client, action: str, workspace, experiment, dataset, pool):
    base = f"/w/{workspace.slug}/experiments/"
    api = f"/api/v1/workspaces/{workspace.slug}/"
    if action in ("pause", "cancel", "resume", "delete"):
        return client.post(f"{base}{experiment.pk}/{action}/")
    if action == "sample":
        return client.post(f"{base}datasets/sample/")
    if action == "gold":
        return client.post(f"{base}datasets/gold/", {"checker": "contains"})
    if action == "dataset_delete":
        return client.post(f"{base}datasets/{dataset.pk}/delete/")
    if action == "upload":
        upload = SimpleUploadedFile("t.jsonl", b'{"prompt": "q", "expected": "a"}\n')
        return client.post(f"{base}datasets/upload/", {"file": upload})
    if action == "new":
        return client.post(f"{base}new/", {"dataset": dataset.pk,
                           "pool_modes": f"{pool.pk}:{pool.mode}", "samples": 3,
                           "concurrency": 2, "action": "start"})  # fmt: skip
    if action == "grade":
        result = experiment.results.first()
        return client.post(f"{base}{experiment.pk}/items/{result.pk}/grade/", {"correct": "1"})
    if action == "api_estimate":
        return client.post(
            f"{api}experiments/estimate",
            {"dataset_id": dataset.pk, "pool": str(pool.pk)},
            content_type="application/json",
        )
    if action.startswith("api_") and action[4:] in ("pause", "cancel", "resume"):
        return client.post(f"{api}experiments/{experiment.pk}/{action[4:]}")
    if action == "api_create":
        return client.post(
            f"{api}experiments",
            {"dataset_id": dataset.pk, "pool": str(pool.pk)},
            content_type="application/json",
        )
    upload = SimpleUploadedFile("t.jsonl", b'{"prompt": "q", "expected": "a"}\n')
    return client.post(f"{api}datasets", {"file": upload})


@pytest.mark.parametrize(
    "page", ["index", "detail", "grading", "live", "csv", "json", "dataset", "api_datasets",
             "api_experiment", "api_results", "api_experiments"],
)  # fmt: skip
@pytest.mark.parametrize("who", ["alice_client", "bob_client", "vera_client"])
def test_it_lets_every_member_read(request, who, page, workspace, experiment, dataset) -> None:
    client: Client = request.getfixturevalue(who)
    response = client.get(read_urls(workspace, experiment, dataset)[page])
    assert response.status_code == 200, response.content[:300]


@pytest.mark.parametrize(
    "page", ["index", "detail", "grading", "live", "csv", "json", "dataset", "api_datasets",
             "api_experiment", "api_results", "api_experiments"],
)  # fmt: skip
def test_it_hides_every_page_from_an_outsider(charlie_client, page, workspace, experiment, dataset):
    assert charlie_client.get(read_urls(workspace, experiment, dataset)[page]).status_code == 404


@pytest.mark.parametrize("action", WRITES)
def test_it_hides_writes_from_an_outsider(
    charlie_client, action, workspace, experiment, dataset, pool
):
    assert write(charlie_client, action, workspace, experiment, dataset, pool).status_code == 404
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert Dataset.objects.count() == 1 and Experiment.objects.count() == 1


@pytest.mark.parametrize("action", WRITES)
def test_it_forbids_writes_to_a_viewer(vera_client, action, workspace, experiment, dataset, pool):
    assert write(vera_client, action, workspace, experiment, dataset, pool).status_code == 403
    experiment.refresh_from_db()
    assert experiment.status == ExperimentStatus.RUNNING
    assert Dataset.objects.count() == 1 and Experiment.objects.count() == 1


def test_it_lets_a_member_pause_resume_and_cancel(bob_client, workspace, experiment) -> None:
    base = f"/w/{workspace.slug}/experiments/{experiment.pk}/"
    for action, status in [("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")]:
        assert bob_client.post(f"{base}{action}/").status_code == 302
        experiment.refresh_from_db()
        assert experiment.status == status


def test_it_shows_the_new_experiment_form_to_a_member_only(bob_client, vera_client, workspace):
    url = f"/w/{workspace.slug}/experiments/new/"
    assert bob_client.get(url).status_code == 200
    assert vera_client.get(url).status_code == 403


def test_it_lets_a_member_grade_an_answer_and_go_back(
    bob_client, vera_client, workspace, experiment
) -> None:
    from tests.workbench.experiments.conftest import finish
    from workbench.experiments.models import ItemStatus
    from workbench.experiments.services import experiment_advance

    experiment.concurrency = 32
    experiment.save()
    experiment_advance(experiment_id=experiment.pk)
    for result in experiment.results.select_related("run"):
        finish(result.run, fused="A two-line poem.")
    experiment_advance(experiment_id=experiment.pk)
    waiting = experiment.results.filter(status=ItemStatus.DONE, correct__isnull=True)
    assert waiting.count() == 3  # the haiku, once per arm
    page = vera_client.get(f"/w/{workspace.slug}/experiments/{experiment.pk}/grade/")
    text = page.content.decode()
    assert text.count('data-testid="grade-item"') == 3 and "grade-correct" not in text
    result = waiting.first()
    url = f"/w/{workspace.slug}/experiments/{experiment.pk}/items/{result.pk}/grade/"
    back = f"/w/{workspace.slug}/curation/review/"
    response = bob_client.post(url, {"correct": "0", "note": "no rhyme", "next": back})
    assert response.status_code == 302 and response["Location"] == back
    result.refresh_from_db()
    assert (result.correct, result.grade_note) == (False, "no rhyme")
    # An off-site "next" is ignored.
    response = bob_client.post(url, {"correct": "1", "next": "https://evil.example/"})
    assert response["Location"] == f"/w/{workspace.slug}/experiments/{experiment.pk}/grade/"
    detail = bob_client.get(f"/w/{workspace.slug}/experiments/{experiment.pk}/").content.decode()
    assert "2 await grading by people" in detail
