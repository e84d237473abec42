"""The curation panel of a run page: who may pick, comment, tag, flag, and what it shows."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.models import Comment, Judgment, ReviewFlag, RunTag
from workbench.runs.models import Run

pytestmark = pytest.mark.django_db


def url(run: Run, action: str = "") -> str:
    return f"/w/{run.workspace.slug}/runs/{run.pk}/curation/{action}"


@pytest.fixture
def run(workspace: Workspace, alice: User, bob: User, vera: User) -> Run:
    return finished_run(workspace, alice)


def test_it_shows_the_panel_on_the_run_page(alice_client: Client, run: Run) -> None:
    html = alice_client.get(f"/w/{run.workspace.slug}/runs/{run.pk}/").content.decode()
    assert 'id="curation"' in html
    assert 'data-testid="judgment-form"' in html


def test_it_serves_the_panel_to_members_and_viewers_only(
    alice_client: Client, bob_client: Client, vera_client: Client, charlie_client: Client, run: Run
) -> None:
    assert alice_client.get(url(run)).status_code == 200
    assert bob_client.get(url(run)).status_code == 200
    viewer = vera_client.get(url(run))
    assert viewer.status_code == 200
    assert 'data-testid="viewer-note"' in viewer.content.decode()
    assert 'data-testid="judgment-form"' not in viewer.content.decode()
    assert charlie_client.get(url(run)).status_code == 404


def test_it_saves_one_judgment_per_person_and_edits_it(
    bob_client: Client, bob: User, run: Run
) -> None:
    data = {
        "pick": "m1",
        "rank_m1": "1",
        "rank_m2": "2",
        "rating_m1": "5",
        "rating_m3": "2",
        "rationale": "Shorter and right.",
        "gold_answer": "Caching keeps answers close.",
    }
    assert bob_client.post(url(run, "judgment/"), data).status_code == 302
    judgment = Judgment.objects.get(run=run, user=bob)
    assert (judgment.choice, judgment.winner) == ("pick", "m1")
    assert judgment.ranking == {"m1": 1, "m2": 2}
    assert judgment.ratings == {"m1": 5, "m3": 2}
    assert judgment.gold_answer == "Caching keeps answers close."
    bob_client.post(url(run, "judgment/"), {"pick": "tie"})
    assert Judgment.objects.filter(run=run, user=bob).count() == 1
    judgment.refresh_from_db()
    assert (judgment.choice, judgment.winner) == ("tie", "")


def test_it_answers_htmx_with_the_panel_showing_who_said_what(
    alice_client: Client, bob_client: Client, run: Run
) -> None:
    bob_client.post(url(run, "judgment/"), {"pick": "m1", "rationale": "bob says"})
    response = alice_client.post(url(run, "judgment/"), {"pick": "m1"}, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'id="curation"' in html
    assert "bob says" in html and "alice" in html
    assert "2 of 2" in html  # the consensus
    assert "The judge and the people disagree." in html  # the judge picked m2


def test_it_refuses_bad_picks(bob_client: Client, bob: User, run: Run) -> None:
    bob_client.post(url(run, "judgment/"), {"pick": "m9"})
    bob_client.post(url(run, "judgment/"), {"pick": "m1", "rating_m1": "7"})
    bob_client.post(url(run, "judgment/"), {"pick": "fused"})  # best-of: no fused answer
    assert not Judgment.objects.filter(user=bob).exists()


def test_it_lets_viewers_comment_but_not_pick_tag_flag_or_share(
    vera_client: Client, run: Run
) -> None:
    assert vera_client.post(url(run, "judgment/"), {"pick": "m1"}).status_code == 403
    assert vera_client.post(url(run, "tags/"), {"tags": "x"}).status_code == 403
    assert vera_client.post(url(run, "flag/"), {"flagged": "1"}).status_code == 403
    assert vera_client.post(url(run, "share/"), {}).status_code == 403
    assert vera_client.post(url(run, "comments/"), {"body": "Looks off"}).status_code == 302
    assert Comment.objects.get(run=run).body == "Looks off"
    assert not Judgment.objects.exists()


def test_it_hides_everything_from_outsiders(charlie_client: Client, run: Run) -> None:
    for action in ("judgment/", "tags/", "flag/", "comments/", "share/", "copy/"):
        assert charlie_client.post(url(run, action), {"body": "x", "pick": "m1"}).status_code == 404
    assert not Comment.objects.exists()


def test_it_threads_replies_one_level_deep(
    alice_client: Client, bob_client: Client, vera_client: Client, run: Run
) -> None:
    alice_client.post(url(run, "comments/"), {"body": "Top"})
    top = Comment.objects.get()
    bob_client.post(url(run, "comments/"), {"body": "Reply", "parent": top.pk})
    reply = Comment.objects.get(body="Reply")
    vera_client.post(url(run, "comments/"), {"body": "Reply to reply", "parent": reply.pk})
    assert Comment.objects.get(body="Reply to reply").parent == top
    html = alice_client.get(url(run)).content.decode()
    assert html.index("Top") < html.index("Reply") < html.index("Reply to reply")


def test_it_refuses_a_parent_from_another_run(
    alice_client: Client, workspace: Workspace, alice: User, run: Run
) -> None:
    other = finished_run(workspace, alice)
    alice_client.post(url(other, "comments/"), {"body": "elsewhere"})
    parent = Comment.objects.get()
    assert (
        alice_client.post(url(run, "comments/"), {"body": "x", "parent": parent.pk}).status_code
        == 404
    )


def test_it_tags_and_flags_runs(bob_client: Client, bob: User, run: Run) -> None:
    bob_client.post(url(run, "tags/"), {"tags": "Math, regression math"})
    assert sorted(RunTag.objects.values_list("name", flat=True)) == ["math", "regression"]
    bob_client.post(url(run, "tags/"), {"tags": "math"})
    assert list(RunTag.objects.values_list("name", flat=True)) == ["math"]
    bob_client.post(url(run, "flag/"), {"flagged": "1"})
    assert ReviewFlag.objects.filter(run=run, user=bob).exists()
    bob_client.post(url(run, "flag/"), {"flagged": "0"})
    assert not ReviewFlag.objects.exists()


def test_it_escapes_comments_and_rationales(alice_client: Client, run: Run) -> None:
    alice_client.post(url(run, "comments/"), {"body": "<script>alert(1)</script>"})
    alice_client.post(url(run, "judgment/"), {"pick": "m1", "rationale": "<img src=x onerror=1>"})
    html = alice_client.get(url(run)).content.decode()
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html


def test_it_copies_a_run_into_another_workspace_of_the_user(
    bob_client: Client, bob: User, charlie: User, run: Run
) -> None:
    mine = bob.memberships.get(workspace__personal=True).workspace
    response = bob_client.post(url(run, "copy/"), {"workspace": mine.slug})
    copy = Run.objects.get(workspace=mine)
    assert response["Location"] == f"/w/{mine.slug}/runs/{copy.pk}/"
    assert copy.prompt == run.prompt and copy.candidates.count() == 3
    assert not copy.calls.exists()  # calls name keys: never copied
    label = next(iter(run.config["providers"].values()))["label"]
    assert label not in str(copy.config)
    theirs = charlie.memberships.get().workspace
    assert bob_client.post(url(run, "copy/"), {"workspace": theirs.slug}).status_code == 404


def test_it_saves_a_gold_answer_without_a_pick(bob_client: Client, bob: User, run: Run) -> None:
    response = bob_client.post(url(run, "judgment/"), {"gold_answer": "Written before picking."})
    assert response.status_code == 302
    judgment = Judgment.objects.get(run=run, user=bob)
    assert (judgment.choice, judgment.gold_answer) == ("", "Written before picking.")
    assert judgment.gold_updated_at is not None
    # A later form without the gold field (say, a pick from the review queue) keeps it.
    bob_client.post(url(run, "judgment/"), {"pick": "m1"})
    judgment.refresh_from_db()
    assert (judgment.choice, judgment.gold_answer) == ("pick", "Written before picking.")


def test_it_shows_teammates_gold_answers_and_lets_one_start_from_them(
    alice_client: Client, bob_client: Client, vera_client: Client, run: Run
) -> None:
    bob_client.post(url(run, "judgment/"), {"gold_answer": "Bob wrote <b>gold</b>."})
    alice_client.post(url(run, "judgment/"), {"pick": "m2", "gold_answer": "Gold by Alice."})
    html = bob_client.get(url(run)).content.decode()
    assert 'data-testid="gold-by-bob"' in html and 'data-testid="gold-by-alice"' in html
    assert "Gold by Alice." in html
    assert "Bob wrote &lt;b&gt;gold&lt;/b&gt;." in html  # escaped
    # bob can start his own from alice's: a button and the text it copies, not his own.
    assert 'data-testid="gold-from-alice"' in html
    assert 'data-testid="gold-from-bob"' not in html
    assert re.search(r'<template data-gold-source="gold-\d+">Gold by Alice.</template>', html)
    # alice's is the newest, so it is the one exported.
    entries = dict(re.findall(r'data-testid="gold-by-(\w+)">(.*?)</details>', html, re.S))
    assert "exported" in entries["alice"] and "exported" not in entries["bob"]
    assert html.index("gold-by-alice") < html.index("gold-by-bob")  # newest first
    # The viewer reads every gold answer but has no form to start one.
    viewer = vera_client.get(url(run)).content.decode()
    assert 'data-testid="gold-by-bob"' in viewer and 'data-testid="gold-from-alice"' not in viewer


def test_it_shows_a_gold_only_judgment_as_not_decided(
    alice_client: Client, bob_client: Client, run: Run
) -> None:
    bob_client.post(url(run, "judgment/"), {"gold_answer": "Draft."})
    html = alice_client.get(url(run)).content.decode()
    assert "not decided yet" in html
    assert "Nobody yet" in html  # no consensus from an undecided judgment
