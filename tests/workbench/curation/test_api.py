"""/api/v1 curation routes: judgments, tags, gold answers, comments, share links of a run, and
agreement, leaderboard and exports of a workspace — the pages' rules, in JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from django.test import Client

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.models import Choice, Comment, Judgment, ShareLink
from workbench.curation.services import judgment_save, run_tags_set
from workbench.runs.models import Run
from workbench.tokens.services import token_create

pytestmark = pytest.mark.django_db

JSON = "application/json"


@pytest.fixture
def run(workspace: Workspace, alice: User, bob: User, vera: User) -> Run:
    return finished_run(workspace, alice, texts={"m1": "one", "m2": "two", "m3": "three"})


def url(run: Run, path: str) -> str:
    return f"/api/v1/workspaces/{run.workspace.slug}/runs/{run.pk}/{path}"


def ws_url(workspace: Workspace, path: str) -> str:
    return f"/api/v1/workspaces/{workspace.slug}/curation/{path}"


def put(client: Client, target: str, body: dict[str, Any]) -> Any:
    return client.put(target, json.dumps(body), content_type=JSON)


def post(client: Client, target: str, body: dict[str, Any]) -> Any:
    return client.post(target, json.dumps(body), content_type=JSON)


# --- judgments -----------------------------------------------------------------------------------


def test_it_saves_my_judgment_and_lists_everyones(
    alice_client: Client, bob_client: Client, vera_client: Client, run: Run, bob: User
) -> None:
    body = {
        "choice": "pick",
        "winner": "m3",
        "ranking": {"m3": 1, "m1": 2},
        "ratings": {"m3": 5},
        "rationale": "Clearest.",
    }
    response = put(bob_client, url(run, "judgments/mine"), body)
    assert response.status_code == 200, response.content
    mine = response.json()
    assert (mine["user"], mine["choice"], mine["winner"], mine["winner_model"]) == (
        "bob",
        "pick",
        "m3",
        "sim-slow",
    )
    assert mine["ranking"] == {"m3": 1, "m1": 2} and mine["ratings"] == {"m3": 5}
    put(alice_client, url(run, "judgments/mine"), {"choice": "tie"})
    # The viewer reads everyone's judgments and the consensus.
    listed = vera_client.get(url(run, "judgments")).json()
    assert [(j["user"], j["choice"]) for j in listed["judgments"]] == [
        ("bob", "pick"),
        ("alice", "tie"),
    ]
    assert listed["consensus"]["split"] is True and listed["consensus"]["total"] == 2
    assert listed["judge_winner"] == "m2"
    # Updating replaces the judgment in place.
    put(bob_client, url(run, "judgments/mine"), {"choice": "pick", "winner": "m2"})
    assert Judgment.objects.get(run=run, user=bob).winner == "m2"
    assert Judgment.objects.filter(run=run).count() == 2
    assert bob_client.get(url(run, "judgments/mine")).json()["winner"] == "m2"
    assert vera_client.get(url(run, "judgments/mine")).json() is None


def test_it_refuses_bad_judgments_with_the_field(bob_client: Client, run: Run) -> None:
    response = put(bob_client, url(run, "judgments/mine"), {"choice": "pick", "winner": "m9"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "winner"
    response = put(bob_client, url(run, "judgments/mine"), {"ratings": {"m1": 9}})
    assert response.status_code == 400
    assert put(bob_client, url(run, "judgments/mine"), {"choice": "best"}).status_code == 422
    assert not Judgment.objects.exists()


def test_it_lets_viewers_read_and_comment_but_not_judge_tag_gold_or_share(
    vera_client: Client, run: Run
) -> None:
    assert put(vera_client, url(run, "judgments/mine"), {"choice": "tie"}).status_code == 403
    assert put(vera_client, url(run, "tags"), {"tags": ["x"]}).status_code == 403
    assert put(vera_client, url(run, "gold-answers/mine"), {"text": "x"}).status_code == 403
    assert post(vera_client, url(run, "share-links"), {}).status_code == 403
    assert vera_client.get(url(run, "share-links")).status_code == 403
    for path in ("judgments", "tags", "gold-answers", "comments"):
        assert vera_client.get(url(run, path)).status_code == 200
    assert post(vera_client, url(run, "comments"), {"body": "Hmm."}).status_code == 201
    assert not Judgment.objects.exists()


def test_it_hides_everything_from_outsiders(charlie_client: Client, run: Run) -> None:
    for path in ("judgments", "judgments/mine", "tags", "gold-answers", "comments", "share-links"):
        assert charlie_client.get(url(run, path)).status_code == 404
    assert put(charlie_client, url(run, "judgments/mine"), {"choice": "tie"}).status_code == 404
    assert post(charlie_client, url(run, "comments"), {"body": "x"}).status_code == 404
    for path in ("agreement", "leaderboard", "export"):
        assert charlie_client.get(ws_url(run.workspace, path)).status_code == 404
    assert not Comment.objects.exists() and not Judgment.objects.exists()


def test_it_accepts_a_bearer_token_for_its_own_workspace_only(
    bob: User, run: Run, charlie: User
) -> None:
    _token, raw = token_create(workspace=run.workspace, user=bob, name="script")
    client = Client()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    response = client.put(
        url(run, "judgments/mine"), json.dumps({"choice": "none"}), JSON, **headers
    )
    assert response.status_code == 200
    assert Judgment.objects.get(user=bob).choice == Choice.NONE
    bobs_own = bob.memberships.get(workspace__personal=True).workspace
    other = finished_run(bobs_own, bob)
    assert client.get(url(other, "judgments"), **headers).status_code == 404
    assert Client().get(url(run, "judgments")).status_code == 401


# --- tags, gold answers --------------------------------------------------------------------------


def test_it_sets_and_reads_tags(bob_client: Client, vera_client: Client, run: Run) -> None:
    response = put(bob_client, url(run, "tags"), {"tags": ["Math", "regression", "math"]})
    assert response.json() == {"tags": ["math", "regression"]}
    assert vera_client.get(url(run, "tags")).json() == {"tags": ["math", "regression"]}
    assert put(bob_client, url(run, "tags"), {"tags": ["no spaces!"]}).status_code == 400


def test_it_saves_gold_answers_without_a_pick_and_shows_whose_is_exported(
    alice_client: Client, bob_client: Client, vera_client: Client, run: Run, bob: User
) -> None:
    response = put(bob_client, url(run, "gold-answers/mine"), {"text": "Bob's gold."})
    assert response.status_code == 200
    judgment = Judgment.objects.get(user=bob)
    assert judgment.choice == "" and judgment.gold_answer == "Bob's gold."
    put(alice_client, url(run, "gold-answers/mine"), {"text": "Alice's gold."})
    listed = vera_client.get(url(run, "gold-answers")).json()
    assert listed["gold"] == "Alice's gold."
    assert [(a["user"], a["text"], a["exported"]) for a in listed["answers"]] == [
        ("alice", "Alice's gold.", True),
        ("bob", "Bob's gold.", False),
    ]
    # bob picking later leaves the gold answer and which one is exported as they were.
    put(bob_client, url(run, "judgments/mine"), {"choice": "pick", "winner": "m1"})
    assert Judgment.objects.get(user=bob).gold_answer == "Bob's gold."
    assert vera_client.get(url(run, "gold-answers")).json()["gold"] == "Alice's gold."


# --- comments ------------------------------------------------------------------------------------


def test_it_threads_comments_one_level_deep(
    alice_client: Client, bob_client: Client, vera_client: Client, workspace: Workspace,
    alice: User, run: Run,
) -> None:  # fmt: skip
    top = post(vera_client, url(run, "comments"), {"body": "Is m2 right?"}).json()
    reply = post(bob_client, url(run, "comments"), {"body": "Yes.", "parent": top["id"]}).json()
    deeper = {"body": "Sure?", "parent": reply["id"]}
    assert post(alice_client, url(run, "comments"), deeper).status_code == 201
    threads = alice_client.get(url(run, "comments")).json()
    assert [(t["author"], t["body"]) for t in threads] == [("vera", "Is m2 right?")]
    assert [r["body"] for r in threads[0]["replies"]] == ["Yes.", "Sure?"]
    other = finished_run(workspace, alice)
    elsewhere = post(alice_client, url(other, "comments"), {"body": "elsewhere"}).json()
    stray = {"body": "x", "parent": elsewhere["id"]}
    assert post(alice_client, url(run, "comments"), stray).status_code == 404
    assert post(alice_client, url(run, "comments"), {"body": "  "}).status_code == 400
    assert post(alice_client, url(run, "comments"), {"body": "a\x00b"}).status_code == 400


# --- share links ---------------------------------------------------------------------------------


def test_it_creates_lists_and_revokes_share_links(
    bob_client: Client, alice_client: Client, run: Run
) -> None:
    body = {"show_costs": True, "expires_in_days": 7}
    response = post(bob_client, url(run, "share-links"), body)
    assert response.status_code == 201, response.content
    link = response.json()
    assert link["live"] and link["show_costs"] and link["created_by"] == "bob"
    assert link["expires_at"] is not None
    share_path = link["url"].removeprefix("http://testserver")
    page = Client().get(share_path)
    assert page.status_code == 200 and "one" in page.content.decode()
    assert [item["id"] for item in alice_client.get(url(run, "share-links")).json()] == [link["id"]]
    revoked = post(alice_client, url(run, "share-links/revoke"), {"id": link["id"]})
    assert revoked.status_code == 200 and revoked.json()["live"] is False
    assert Client().get(share_path).status_code == 404
    assert ShareLink.objects.get().revoked_at is not None
    assert post(bob_client, url(run, "share-links/revoke"), {"id": 10**9}).status_code == 404
    too_long = {"expires_in_days": 400}
    assert post(bob_client, url(run, "share-links"), too_long).status_code == 422


def test_it_does_not_revoke_another_runs_link(
    bob_client: Client, workspace: Workspace, alice: User, run: Run
) -> None:
    other = finished_run(workspace, alice)
    link = post(bob_client, url(other, "share-links"), {}).json()
    assert post(bob_client, url(run, "share-links/revoke"), {"id": link["id"]}).status_code == 404
    assert ShareLink.objects.get().revoked_at is None


# --- agreement, leaderboard ----------------------------------------------------------------------


def test_it_reports_agreement_per_judge_model_and_pool(
    vera_client: Client, workspace: Workspace, alice: User, bob: User, run: Run
) -> None:
    judgment_save(run=run, user=bob, choice="pick", winner="m2")  # the judge picked m2 too
    other = finished_run(workspace, alice, winner="m1")
    judgment_save(run=other, user=bob, choice="pick", winner="m3")
    body = vera_client.get(ws_url(workspace, "agreement")).json()
    assert (body["overall"]["agreed"], body["overall"]["total"]) == (1, 2)
    assert body["overall"]["rate"] == 0.5
    assert 0 <= body["overall"]["low"] < 0.5 < body["overall"]["high"] <= 1
    assert [(r["name"], r["total"]) for r in body["by_judge"]] == [("sim-judge@ttft=0.01,tps=0", 2)]
    assert sorted(r["total"] for r in body["by_pool"]) == [1, 1]
    assert body["excluded"] == 0


def test_it_serves_the_leaderboard_optionally_by_tag(
    vera_client: Client, workspace: Workspace, alice: User, bob: User, run: Run
) -> None:
    judgment_save(run=run, user=bob, choice="pick", winner="m3")
    run_tags_set(run=run, user=bob, names="math")
    other = finished_run(workspace, alice)
    judgment_save(run=other, user=bob, choice="pick", winner="m1")
    body = vera_client.get(ws_url(workspace, "leaderboard")).json()
    by_model = {s["model"]: s for s in body["standings"]}
    assert set(by_model) == {"sim-fast", "sim-balanced", "sim-slow"}
    assert (by_model["sim-slow"]["runs_won"], by_model["sim-slow"]["runs_judged"]) == (1, 2)
    assert by_model["sim-balanced"]["answer_win_rate"] == 0
    tagged = vera_client.get(ws_url(workspace, "leaderboard"), {"tag": "math"}).json()
    assert tagged["tag"] == "math"
    assert tagged["standings"][0]["model"] == "sim-slow"
    assert {s["runs_judged"] for s in tagged["standings"]} == {1}
    assert vera_client.get(ws_url(workspace, "leaderboard"), {"tag": "A B"}).status_code == 422


# --- exports -------------------------------------------------------------------------------------


def download(client: Client, workspace: Workspace, **params: Any) -> tuple[str, Any]:
    response = client.get(ws_url(workspace, "export"), params)
    assert response.status_code == 200, response.content
    assert response.streaming
    return b"".join(response.streaming_content).decode(), response


def test_it_streams_each_export_format(
    vera_client: Client, workspace: Workspace, alice: User, bob: User, run: Run
) -> None:
    judgment_save(run=run, user=bob, choice="pick", winner="m3", gold_answer="Gold.")
    finished_run(workspace, alice, prompt="Nobody judged this")
    body, response = download(vera_client, workspace, format="chat")
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert "attachment" in response["Content-Disposition"]
    assert [json.loads(line)["messages"][-1]["content"] for line in body.splitlines()] == ["Gold."]
    body, _ = download(vera_client, workspace, format="pairs")
    pairs = [json.loads(line) for line in body.splitlines()]
    # The gold answer is chosen; the picked answer (m3) is never rejected.
    assert {(p["chosen"], p["rejected"]) for p in pairs} == {("Gold.", "one"), ("Gold.", "two")}
    body, response = download(vera_client, workspace, format="csv", curated_only="false")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 2


def test_it_filters_exports_like_the_export_page(
    vera_client: Client, workspace: Workspace, alice: User, bob: User, run: Run
) -> None:
    judgment_save(run=run, user=bob, choice="pick", winner="m1")
    run_tags_set(run=run, user=bob, names="math")
    other = finished_run(workspace, alice, prompt="Other")
    judgment_save(run=other, user=bob, choice="pick", winner="m1")
    tagged, _ = download(vera_client, workspace, format="chat", tag="math")
    assert len(tagged.splitlines()) == 1
    by_pool, _ = download(vera_client, workspace, format="chat", pool=other.pool.slug)
    assert json.loads(by_pool)["messages"][0]["content"] == "Other"
    by_id, _ = download(vera_client, workspace, format="chat", pool=str(other.pool.pk))
    assert by_id == by_pool
    later, _ = download(vera_client, workspace, format="chat", date_from="9999-12-31")
    assert later == ""
    everything, _ = download(vera_client, workspace, format="chat", date_to="9999-12-31")
    assert len(everything.splitlines()) == 2
    for pool in ("nope", str(10**30)):
        response = vera_client.get(ws_url(workspace, "export"), {"pool": pool})
        assert response.status_code == 400 and response.json()["code"] == "unknown_pool"
    assert vera_client.get(ws_url(workspace, "export"), {"format": "xml"}).status_code == 422
