"""Curated data out: each format streams and round-trips through its parser."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.workbench.runs.pages import finished_run
from workbench.accounts.models import User, Workspace
from workbench.curation.services import judgment_save, run_tags_set
from workbench.runs.models import ProviderCall, Run

pytestmark = pytest.mark.django_db


@pytest.fixture
def runs(workspace: Workspace, alice: User, bob: User, vera: User) -> dict[str, Run]:
    picked = finished_run(
        workspace,
        alice,
        prompt='Say hi, with "quotes", commas, and\nnewlines',
        texts={"m1": "hi", "m2": 'hello, "world"', "m3": "hey\nthere"},
    )
    judgment_save(run=picked, user=bob, choice="pick", winner="m2")
    run_tags_set(run=picked, user=bob, names="greet")
    gold = finished_run(
        workspace, alice, prompt="Gold one", texts={"m1": "a", "m2": "b", "m3": "c"}
    )
    judgment_save(run=gold, user=alice, choice="none", gold_answer="The real answer.")
    untouched = finished_run(workspace, alice, prompt="Nobody judged this")
    ProviderCall.objects.update(key_label="secret-key-label")
    return {"picked": picked, "gold": gold, "untouched": untouched}


def download(client: Client, workspace: Workspace, **params: str) -> tuple[str, object]:
    response = client.get(f"/w/{workspace.slug}/curation/export/", {"download": "1", **params})
    assert response.status_code == 200
    assert response.streaming
    body = b"".join(response.streaming_content).decode()
    return body, response


def test_it_exports_chat_jsonl(vera_client: Client, workspace: Workspace, runs: dict) -> None:
    body, response = download(vera_client, workspace, format="chat", curated_only="on")
    assert "attachment" in response["Content-Disposition"]
    lines = [json.loads(line) for line in body.splitlines()]
    assert len(lines) == 2
    by_prompt = {line["messages"][-2]["content"]: line["messages"] for line in lines}
    picked = by_prompt['Say hi, with "quotes", commas, and\nnewlines']
    assert picked[-1] == {"role": "assistant", "content": 'hello, "world"'}
    assert by_prompt["Gold one"][-1]["content"] == "The real answer."
    assert [m["role"] for m in picked] == ["user", "assistant"]


def test_it_exports_preference_pairs(vera_client: Client, workspace: Workspace, runs: dict) -> None:
    body, _ = download(vera_client, workspace, format="pairs", curated_only="on")
    pairs = [json.loads(line) for line in body.splitlines()]
    greet = [p for p in pairs if p["prompt"].startswith("Say hi")]
    assert {p["chosen"] for p in greet} == {'hello, "world"'}
    assert sorted(p["rejected"] for p in greet) == ["hey\nthere", "hi"]
    gold = [p for p in pairs if p["prompt"] == "Gold one"]
    assert sorted(p["rejected"] for p in gold) == ["a", "b", "c"]


def test_it_exports_csv(vera_client: Client, workspace: Workspace, runs: dict) -> None:
    body, _ = download(vera_client, workspace, format="csv", curated_only="")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 3  # not only curated ones
    greet = next(r for r in rows if r["prompt"].startswith("Say hi"))
    assert greet["prompt"] == 'Say hi, with "quotes", commas, and\nnewlines'
    assert greet["chosen"] == 'hello, "world"'
    assert greet["people_winner_model"] == "sim-balanced"
    assert greet["judge_winner_model"] == "sim-balanced"
    assert greet["tags"] == "greet"


def test_it_never_exports_keys_or_key_labels(
    vera_client: Client, workspace: Workspace, runs: dict
) -> None:
    label = next(iter(runs["picked"].config["providers"].values()))["label"]
    for kind in ("chat", "pairs", "csv"):
        body, _ = download(vera_client, workspace, format=kind, curated_only="")
        assert "secret-key-label" not in body
        assert label not in body


def test_it_filters_by_tag_pool_and_date(
    alice_client: Client, workspace: Workspace, alice: User, runs: dict
) -> None:
    body, _ = download(alice_client, workspace, format="csv", tag="greet")
    assert len(list(csv.DictReader(io.StringIO(body)))) == 1
    pool = runs["gold"].pool_id
    body, _ = download(alice_client, workspace, format="csv", pool=str(pool))
    assert [r["prompt"] for r in csv.DictReader(io.StringIO(body))] == ["Gold one"]
    tomorrow = (timezone.now() + timedelta(days=2)).date().isoformat()
    body, _ = download(alice_client, workspace, format="csv", date_from=tomorrow)
    assert list(csv.DictReader(io.StringIO(body))) == []


def test_it_exports_only_the_users_workspace(
    charlie_client: Client, charlie: User, workspace: Workspace, runs: dict
) -> None:
    assert charlie_client.get(f"/w/{workspace.slug}/curation/export/").status_code == 404
    mine = charlie.memberships.get().workspace
    body, _ = download(charlie_client, mine, format="csv", curated_only="")
    assert len(list(csv.DictReader(io.StringIO(body)))) == 0


def test_it_shows_the_form_with_a_count(
    alice_client: Client, workspace: Workspace, runs: dict
) -> None:
    response = alice_client.get(
        f"/w/{workspace.slug}/curation/export/", {"format": "chat", "curated_only": "on"}
    )
    assert response.status_code == 200
    assert "2 runs match." in response.content.decode()


def test_it_puts_the_system_prompt_in_every_pair(
    vera_client: Client, workspace: Workspace, runs: dict
) -> None:
    Run.objects.filter(pk=runs["picked"].pk).update(system_prompt="Be brief.")
    body, _ = download(vera_client, workspace, format="pairs", curated_only="on")
    pairs = [json.loads(line) for line in body.splitlines()]
    assert all(set(p) == {"system", "prompt", "chosen", "rejected"} for p in pairs)
    assert {p["system"] for p in pairs if p["prompt"].startswith("Say hi")} == {"Be brief."}
    assert {p["system"] for p in pairs if p["prompt"] == "Gold one"} == {""}
    body, _ = download(vera_client, workspace, format="chat", curated_only="on")
    chats = [json.loads(line)["messages"] for line in body.splitlines()]
    assert chats[0][0] == {"role": "system", "content": "Be brief."}


def test_it_exports_the_most_recently_written_gold_answer(
    vera_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    run = finished_run(workspace, alice, prompt="Which gold?")
    judgment_save(run=run, user=alice, choice="pick", winner="m1", gold_answer="Alice's.")
    judgment_save(run=run, user=bob, choice="", gold_answer="Bob's.")

    def exported() -> str:
        body, _ = download(vera_client, workspace, format="chat", curated_only="on")
        return json.loads(body)["messages"][-1]["content"]

    assert exported() == "Bob's."
    # alice changing her pick (not her gold) does not make hers the newest gold answer.
    judgment_save(run=run, user=alice, choice="pick", winner="m2", rationale="changed my mind")
    assert exported() == "Bob's."
    judgment_save(run=run, user=alice, choice="pick", winner="m2", gold_answer="Alice's, v2.")
    assert exported() == "Alice's, v2."
