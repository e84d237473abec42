"""Judge reliability, the leaderboard and the review queue, from judgments in the database."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.analysis import judge_agreement, leaderboard_of, review_queue
from workbench.curation.services import judgment_save, review_flag_set, run_tags_set
from workbench.runs.models import Run

pytestmark = pytest.mark.django_db


def with_verdict(run: Run, **changes: object) -> Run:
    verdict = dict(run.verdict or {})
    verdict.update(changes)
    Run.objects.filter(pk=run.pk).update(verdict=verdict)
    run.refresh_from_db()
    return run


def test_it_measures_agreement_per_judge_and_pool(
    workspace: Workspace, alice: User, bob: User
) -> None:
    agreed = finished_run(workspace, alice, winner="m2")
    judgment_save(run=agreed, user=alice, choice="pick", winner="m2")
    judgment_save(run=agreed, user=bob, choice="pick", winner="m2")
    disagreed = finished_run(workspace, alice, winner="m2")
    judgment_save(run=disagreed, user=bob, choice="pick", winner="m1")
    split = finished_run(workspace, alice, winner="m1")
    judgment_save(run=split, user=alice, choice="pick", winner="m1")
    judgment_save(run=split, user=bob, choice="pick", winner="m3")
    finished_run(workspace, alice)  # nobody judged it: not counted at all

    reliability = judge_agreement(workspace)
    assert (reliability.overall.agreed, reliability.overall.total) == (1, 2)
    assert reliability.excluded == 1
    assert [(r.name, r.stats.total) for r in reliability.by_judge] == [
        ("sim-judge@ttft=0.01,tps=0", 2)
    ]
    assert len(reliability.by_pool) == 2  # each helper run has a pool of its own


def test_it_shows_the_judges_page(
    alice_client: Client, vera_client: Client, charlie_client: Client, workspace: Workspace,
    alice: User, vera: User,
) -> None:  # fmt: skip
    run = finished_run(workspace, alice, winner="m2")
    judgment_save(run=run, user=alice, choice="pick", winner="m2")
    response = vera_client.get(f"/w/{workspace.slug}/judges/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in html and 'class="bar"' in html
    assert 'data-testid="agreement-rate">100%' in html
    assert charlie_client.get(f"/w/{workspace.slug}/judges/").status_code == 404
    # The navigation now links the section.
    assert (
        f'href="/w/{workspace.slug}/judges/"'
        in alice_client.get(f"/w/{workspace.slug}/runs/").content.decode()
    )


def test_it_ranks_models_people_prefer(workspace: Workspace, alice: User, bob: User) -> None:
    for _ in range(3):
        run = finished_run(workspace, alice)
        judgment_save(run=run, user=bob, choice="pick", winner="m3")  # sim-slow
    ranked = finished_run(workspace, alice)
    judgment_save(
        run=ranked, user=alice, choice="pick", winner="m3", ranking={"m3": 1, "m1": 2, "m2": 3}
    )
    run_tags_set(run=ranked, user=alice, names="ranked")
    standings = leaderboard_of(workspace)
    assert standings[0].name == "sim-slow"
    assert standings[0].wins == 8 and standings[0].losses == 0
    by_tag = leaderboard_of(workspace, tag="ranked")
    assert [s.name for s in by_tag] == ["sim-slow", "sim-fast", "sim-balanced"]


def test_it_shows_the_leaderboard_page(
    vera_client: Client, charlie_client: Client, workspace: Workspace, alice: User, vera: User
) -> None:
    run = finished_run(workspace, alice)
    judgment_save(run=run, user=alice, choice="pick", winner="m1")
    html = vera_client.get(f"/w/{workspace.slug}/curation/leaderboard/").content.decode()
    assert "sim-fast" in html and "<svg" in html
    assert re.search(r'data-testid="answer-won">100% <span[^>]*>1 of 1</span>', html)
    assert charlie_client.get(f"/w/{workspace.slug}/curation/leaderboard/").status_code == 404


def test_it_queues_runs_that_need_a_person(workspace: Workspace, alice: User, bob: User) -> None:
    sure = finished_run(workspace, alice)  # confidence 0.8, scores 6-8: not queued
    unsure = with_verdict(finished_run(workspace, alice), confidence=0.4)
    swapped = with_verdict(finished_run(workspace, alice), agreement=False, passes=2)
    spread = with_verdict(finished_run(workspace, alice), scores={"m1": 1, "m2": 9, "m3": 5})
    flagged = finished_run(workspace, alice)
    review_flag_set(run=flagged, user=alice, flagged=True)
    contradicted = with_verdict(
        finished_run(workspace, alice),
        analysis={"contradictions": ["A says 4, B says 5", "A and C differ on the unit"]},
    )
    one_contradiction = with_verdict(
        finished_run(workspace, alice), analysis={"contradictions": ["a small difference"]}
    )

    queue = review_queue(workspace, bob)
    queued = {item.run.pk for item in queue}
    assert queued == {unsure.pk, swapped.pk, spread.pk, flagged.pk, contradicted.pk}
    assert sure.pk not in queued and one_contradiction.pk not in queued
    reasons = {item.run.pk: item.reasons for item in queue}
    assert reasons[contradicted.pk] == ["the answers disagree strongly"]
    judgment_save(run=unsure, user=bob, choice="tie")
    assert unsure.pk not in {item.run.pk for item in review_queue(workspace, bob)}
    assert unsure.pk in {item.run.pk for item in review_queue(workspace, alice)}


def test_it_walks_the_queue_one_run_after_another(
    bob_client: Client, vera_client: Client, charlie_client: Client, workspace: Workspace,
    alice: User, bob: User, vera: User,
) -> None:  # fmt: skip
    first = with_verdict(finished_run(workspace, alice), confidence=0.3)
    second = with_verdict(finished_run(workspace, alice), confidence=0.3)
    page = bob_client.get(f"/w/{workspace.slug}/curation/review/")
    assert page.status_code == 200 and "Start reviewing (2)" in page.content.decode()
    nxt = f"/w/{workspace.slug}/curation/review/next/"
    response = bob_client.get(nxt)
    assert str(second.pk) in response["Location"]  # newest first
    run_page = bob_client.get(response["Location"]).content.decode()
    assert 'data-testid="review-next"' in run_page
    assert str(first.pk) in bob_client.get(nxt, {"skip": str(second.pk)})["Location"]
    judgment_save(run=second, user=bob, choice="pick", winner="m1")
    assert str(first.pk) in bob_client.get(nxt)["Location"]
    judgment_save(run=first, user=bob, choice="none")
    assert bob_client.get(nxt)["Location"].endswith("/curation/review/")
    assert vera_client.get(f"/w/{workspace.slug}/curation/review/").status_code == 200
    assert vera_client.get(nxt).status_code == 403
    assert charlie_client.get(nxt).status_code == 404


def test_it_counts_how_often_each_models_answer_won(
    workspace: Workspace, alice: User, bob: User
) -> None:
    # Known data: sim-slow's answer is the people's winner in two of three judged runs.
    for winner in ("m3", "m3", "m1"):
        run = finished_run(workspace, alice)
        judgment_save(run=run, user=bob, choice="pick", winner=winner)
    tied = finished_run(workspace, alice)  # judged, but no model's answer won it
    judgment_save(run=tied, user=bob, choice="tie")
    undecided = finished_run(workspace, alice)  # a gold answer alone judges nothing
    judgment_save(run=undecided, user=bob, choice="", gold_answer="Gold.")
    finished_run(workspace, alice)  # nobody judged it
    by_model = {s.name: s for s in leaderboard_of(workspace)}
    assert (by_model["sim-slow"].runs_won, by_model["sim-slow"].runs_judged) == (2, 4)
    assert (by_model["sim-fast"].runs_won, by_model["sim-fast"].runs_judged) == (1, 4)
    assert by_model["sim-balanced"].answer_win_rate == 0
    assert by_model["sim-slow"].answer_win_rate == 0.5


def test_it_counts_a_self_fusion_model_once_per_run(
    workspace: Workspace, alice: User, bob: User
) -> None:
    # Two seats of sim-fast beside one of sim-slow: people ranked sim-fast's seats 1st and 3rd.
    mixed = finished_run(workspace, alice, models=("sim-fast", "sim-slow", "sim-fast"))
    judgment_save(
        run=mixed, user=bob, choice="pick", winner="m1", ranking={"m1": 1, "m2": 2, "m3": 3}
    )
    # Only sim-fast answered: its model could not have lost, so the run is not counted.
    alone = finished_run(workspace, alice, models=("sim-fast", "sim-fast"))
    judgment_save(run=alone, user=bob, choice="pick", winner="m2")
    by_model = {s.name: s for s in leaderboard_of(workspace)}
    fast, slow = by_model["sim-fast"], by_model["sim-slow"]
    assert (fast.runs_won, fast.runs_judged) == (1, 1)  # one run, not one per seat
    assert (slow.runs_won, slow.runs_judged) == (0, 1)
    # Pairwise, seats count: sim-fast's first seat beat sim-slow, its second lost to it; the
    # seats' comparison with each other says nothing and is dropped.
    assert (fast.wins, fast.losses) == (1, 1) and (slow.wins, slow.losses) == (1, 1)


def test_it_keeps_runs_with_only_a_gold_answer_in_the_review_queue(
    workspace: Workspace, alice: User, bob: User
) -> None:
    unsure = with_verdict(finished_run(workspace, alice), confidence=0.4)
    judgment_save(run=unsure, user=bob, choice="", gold_answer="Gold first, pick later.")
    assert unsure.pk in {item.run.pk for item in review_queue(workspace, bob)}
