"""Blind mode: until a person has judged a run, its page names no model and no credential, and
each person sees the answers in an order of their own."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.blind import blinding_of
from workbench.curation.services import gold_answer_save, judgment_save
from workbench.runs.models import Run

pytestmark = pytest.mark.django_db

MODELS = ("sim-fast", "sim-balanced", "sim-slow", "sim-echo")
TEXTS = {f"m{i}": f"Plain answer number {i}." for i in range(1, 5)}
JUDGE = "sim-judge"


def page(client: Client, run: Run) -> str:
    response = client.get(f"/w/{run.workspace.slug}/runs/{run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def credential_label(run: Run) -> str:
    return next(iter(run.config["providers"].values()))["label"]


def names_in(html: str, run: Run) -> list[str]:
    return [n for n in (*MODELS, JUDGE, credential_label(run)) if n in html]


def column_members(html: str) -> list[str]:
    return re.findall(r'<article class="cand[^"]*" data-part="[^"]*" data-member="(m\d)"', html)


@pytest.fixture
def blind_workspace(workspace: Workspace) -> Workspace:
    workspace.blind_mode = True
    workspace.save()
    return workspace


@pytest.fixture
def run(blind_workspace: Workspace, alice: User, bob: User, vera: User) -> Run:
    return finished_run(blind_workspace, alice, models=MODELS, texts=TEXTS, winner="m2")


def test_it_names_no_model_before_the_pick_and_every_model_after(
    bob_client: Client, bob: User, run: Run
) -> None:
    before = page(bob_client, run)
    assert names_in(before, run) == []
    assert "Answer 1" in before and "model names show once you have judged" in before
    live = json.loads(re.search(r'id="run-live" type="application/json">(.*?)</script>', before)[1])
    assert live["blind"] is True and live["providers"] == {}
    assert sorted(live["labels"].values()) == ["Answer 1", "Answer 2", "Answer 3", "Answer 4"]

    judgment_save(run=run, user=bob, choice="pick", winner="m3")
    after = page(bob_client, run)
    assert set(names_in(after, run)) == {*MODELS, JUDGE, credential_label(run)}
    assert "model names show once you have judged" not in after


def test_it_keeps_names_hidden_from_each_person_until_they_judge(
    alice_client: Client, bob: User, run: Run
) -> None:
    judgment_save(run=run, user=bob, choice="pick", winner="m1")
    # bob's pick reveals nothing to alice: the panel shows his pick by alias too.
    html = page(alice_client, run)
    assert names_in(html, run) == []
    assert "bob" in html


def test_it_does_not_reveal_names_for_a_gold_answer_alone(
    bob_client: Client, bob: User, run: Run
) -> None:
    gold_answer_save(run=run, user=bob, text="The real answer.")
    assert names_in(page(bob_client, run), run) == []
    judgment_save(run=run, user=bob, choice="none")  # "none is good" is a judgment: reveal
    assert MODELS[0] in page(bob_client, run)


def test_it_hides_names_in_the_panels_fragment_the_live_page_refetches(
    bob_client: Client, run: Run
) -> None:
    response = bob_client.get(f"/w/{run.workspace.slug}/runs/{run.pk}/panels/")
    assert response.status_code == 200
    assert names_in(response.content.decode(), run) == []


def test_it_applies_a_pools_blind_mode_in_a_workspace_without_one(
    workspace: Workspace, alice: User, bob: User, bob_client: Client
) -> None:
    run = finished_run(workspace, alice, models=MODELS, texts=TEXTS)
    assert MODELS[0] in page(bob_client, run)
    run.pool.blind_mode = True
    run.pool.save()
    assert names_in(page(bob_client, run), run) == []


def test_it_shuffles_the_columns_per_person_stably(
    blind_workspace: Workspace, alice: User, bob: User, alice_client: Client, bob_client: Client
) -> None:
    runs = [finished_run(blind_workspace, alice, models=MODELS, texts=TEXTS) for _ in range(5)]
    orders = {}
    for who, client in (("alice", alice_client), ("bob", bob_client)):
        for run in runs:
            first = column_members(page(client, run))
            assert sorted(first) == ["m1", "m2", "m3", "m4"]
            assert column_members(page(client, run)) == first  # stable across visits
            orders[who, run.pk] = first
    # Each person has an order of their own (4! orders each: all five equal is a 24^-5 chance).
    assert any(orders["alice", r.pk] != orders["bob", r.pk] for r in runs)
    assert any(orders["bob", r.pk] != ["m1", "m2", "m3", "m4"] for r in runs)
    # The panel follows the columns: the first column is "Answer 1" there too.
    run = runs[0]
    blinding = blinding_of(run, bob)
    assert blinding.order == tuple(orders["bob", run.pk])
    assert blinding.alias(orders["bob", run.pk][0]) == "Answer 1"


def test_it_keeps_the_order_after_the_pick(bob_client: Client, bob: User, run: Run) -> None:
    before = column_members(page(bob_client, run))
    judgment_save(run=run, user=bob, choice="pick", winner="m1")
    assert column_members(page(bob_client, run)) == before


def test_it_hides_the_winner_in_the_runs_list_until_the_person_judged(
    bob_client: Client, alice_client: Client, alice: User, bob: User, run: Run
) -> None:
    url = f"/w/{run.workspace.slug}/runs/"

    def row(client: Client) -> str:
        html = client.get(url).content.decode()
        return re.search(rf'<tr data-run="{run.pk}">(.*?)</tr>', html, re.S)[1]

    assert 'data-testid="winner-hidden"' in row(bob_client)
    assert names_in(row(bob_client), run) == []
    judgment_save(run=run, user=bob, choice="tie")
    assert 'data-testid="winner-hidden"' not in row(bob_client)
    assert "sim-balanced" in row(bob_client)  # the judge's winner, m2
    assert 'data-testid="winner-hidden"' in row(alice_client)


def test_it_reloads_the_page_when_a_pick_reveals_the_names(
    bob_client: Client, bob: User, run: Run
) -> None:
    url = f"/w/{run.workspace.slug}/runs/{run.pk}/curation/judgment/"
    response = bob_client.post(url, {"gold_answer": "draft"}, HTTP_HX_REQUEST="true")
    assert "HX-Refresh" not in response  # still blind: the panel is swapped as usual
    assert 'id="curation"' in response.content.decode()
    response = bob_client.post(url, {"pick": "m2"}, HTTP_HX_REQUEST="true")
    assert response["HX-Refresh"] == "true"
    response = bob_client.post(url, {"pick": "m3"}, HTTP_HX_REQUEST="true")
    assert "HX-Refresh" not in response  # nothing more to reveal


def test_it_shows_names_when_blind_mode_is_off(
    workspace: Workspace, alice: User, alice_client: Client
) -> None:
    run = finished_run(workspace, alice, models=MODELS, texts=TEXTS)
    html = page(alice_client, run)
    assert set(names_in(html, run)) == {*MODELS, JUDGE, credential_label(run)}
    assert column_members(html) == ["m1", "m2", "m3", "m4"]


async def _frames_of(run: Run, user: User) -> list[dict]:
    """What the run's websocket sends ``user`` on connecting (a finished run: its snapshot)."""
    from channels.testing import WebsocketCommunicator

    from workbench.runs.consumers import RunConsumer

    communicator = WebsocketCommunicator(RunConsumer.as_asgi(), f"/ws/runs/{run.pk}/")
    communicator.scope["user"] = user
    communicator.scope["url_route"] = {"kwargs": {"run_id": str(run.pk)}}
    assert (await communicator.connect())[0]
    try:
        return [await communicator.receive_json_from(timeout=5)]
    finally:
        await communicator.disconnect()


def _without_texts(value: object) -> object:
    if isinstance(value, dict):
        return {k: _without_texts(v) for k, v in value.items() if k != "text"}
    if isinstance(value, list):
        return [_without_texts(v) for v in value]
    return value


@pytest.mark.django_db(transaction=True)
async def test_it_hides_names_in_the_websocket_until_the_person_judged(
    blind_workspace: Workspace, alice: User, bob: User
) -> None:
    from asgiref.sync import sync_to_async

    from workbench.runs.models import ProviderCall

    run = await sync_to_async(finished_run)(
        blind_workspace, alice, models=MODELS, texts=TEXTS, winner="m2"
    )
    await ProviderCall.objects.filter(run=run).aupdate(
        key_label="…k3y9", error="sim-slow failed: overloaded"
    )
    label = await sync_to_async(credential_label)(run)

    (before,) = await _frames_of(run, bob)
    shown = json.dumps(_without_texts(before), ensure_ascii=False)
    assert [n for n in (*MODELS, JUDGE, label, "…k3y9") if n in shown] == []
    assert before["state"]["parts"]["m1/0"]["text"] == TEXTS["m1"]  # answers left whole

    await sync_to_async(judgment_save)(run=run, user=bob, choice="pick", winner="m3")
    (after,) = await _frames_of(run, bob)
    shown = json.dumps(_without_texts(after), ensure_ascii=False)
    assert {n for n in (*MODELS, JUDGE, label, "…k3y9") if n in shown} == {
        *MODELS,
        JUDGE,
        label,
        "…k3y9",
    }


def test_it_scrubs_live_events_but_leaves_answers_whole() -> None:
    from workbench.curation.blind import HIDDEN, LiveScrubber

    scrubber = LiveScrubber(("sim-balanced", "sim-fast", "My OpenAI"))
    started = {"type": "candidate.started", "candidate": "m1", "model": "sim-fast",
               "provider": "My OpenAI", "provider_kind": "openai"}  # fmt: skip
    delta = {"type": "candidate.delta", "candidate": "m1", "text": "I am sim-fast, hello"}
    call = {"type": "call.recorded", "call": {"model": "sim-balanced", "key_label": "…abcd",
            "fallback_models": ["sim-fast"], "error": "sim-balanced failed: 503"}}  # fmt: skip

    assert scrubber.scrub(started) == {**started, "model": HIDDEN, "provider": HIDDEN}
    assert scrubber.scrub(delta) == delta  # the answer is what it is
    assert scrubber.scrub(call)["call"] == {
        "model": HIDDEN, "key_label": HIDDEN, "fallback_models": [HIDDEN],
        "error": f"{HIDDEN} failed: 503",
    }  # fmt: skip
