"""The run page: what it shows from the database and the live state, and cancel / rerun."""

from __future__ import annotations

import json
import re
from decimal import Decimal

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from tests.workbench.runs.helpers import simulated_pool, start_run
from tests.workbench.runs.pages import XSS_TEXT, elements, finished_run, script_vectors
from workbench.accounts.models import User, Workspace
from workbench.keys.models import Scope
from workbench.keys.services import credential_create
from workbench.pools.inputs import MemberInput, PoolInput
from workbench.pools.services import pool_create
from workbench.runs.live import LiveStore, LiveWrite
from workbench.runs.models import Candidate, CandidateStatus, Run, RunStatus
from workbench.runs.publish import redis_client

pytestmark = pytest.mark.django_db


def page(client: Client, run: Run) -> str:
    response = client.get(f"/w/{run.workspace.slug}/runs/{run.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def candidate_articles(html: str) -> list[str]:
    return re.findall(r'<article class="cand[^"]*"[^>]*data-part="m\d+/\d+"[^>]*>', html)


def test_it_shows_one_column_per_candidate_with_its_numbers(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    html = page(alice_client, run)
    assert len(candidate_articles(html)) == 3
    assert "sim-fast" in html and "sim-balanced" in html and "sim-slow" in html
    assert "80 ms" in html  # TTFT of the first
    assert "400 ms" in html  # its latency
    assert "$0.00012" in html  # its cost
    assert "20 / 40" in html  # its tokens in / out


def test_it_labels_simulated_providers(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    html = page(alice_client, finished_run(workspace, alice))
    # Every column, the judge and every call row say so.
    visible = re.findall(
        r'<span class="badge badge-sim"(?![^>]*hidden)[^>]*>simulated</span>', html
    )
    assert len(visible) >= 3 + 1 + 4


def test_it_does_not_call_a_real_provider_simulated(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    credential = credential_create(
        workspace=workspace, user=alice, provider="openai_compatible", label="Local vLLM",
        scope=Scope.WORKSPACE, base_url="http://127.0.0.1:9/v1",
    )  # fmt: skip
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="Real",
            members=[MemberInput(credential_id=credential.pk, model="llama3", custom_model=True)],
        ),
    )
    html = page(alice_client, start_run(pool, alice))
    assert "Local vLLM" in html
    assert not re.findall(
        r'<span class="badge badge-sim"(?![^>]*hidden)[^>]*>simulated</span>', html
    )


def test_it_outlines_the_winner_and_shows_the_verdict(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    html = page(alice_client, finished_run(workspace, alice, winner="m2"))
    winners = [a for a in candidate_articles(html) if "is-winner" in a]
    assert len(winners) == 1 and 'data-member="m2"' in winners[0]
    verdict = html[html.index('id="run-verdict"') :]
    assert 'data-testid="winner">sim-balanced<' in verdict
    assert "Answer B is the most complete." in verdict
    assert "80%" in verdict  # confidence
    assert re.search(r'score-value">7<', verdict)  # m2's score, 6.0 + 1


def test_it_says_so_when_the_judge_failed_and_keeps_the_answers(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, status=RunStatus.FINISHED_WITHOUT_VERDICT)
    Run.objects.filter(pk=run.pk).update(error="judge: the reply held no verdict")
    html = page(alice_client, run)
    assert "The judge gave no verdict." in html
    assert "judge: the reply held no verdict" in html
    assert len(candidate_articles(html)) == 3
    assert "is-winner" not in "".join(candidate_articles(html))


def test_it_lists_every_call_and_sums_them(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    html = page(alice_client, finished_run(workspace, alice))
    calls = html[html.index('data-testid="calls"') :]
    rows = calls[: calls.index("<tfoot>")].count("<tr>") - 1  # minus the head row
    assert rows == 4  # three members and the judge
    total = calls[calls.index('data-testid="calls-total"') :]
    # 0.00012 + 0.00024 + 0.00036 + 0.00005
    assert "$0.00077" in total
    assert "+ unpriced" not in total
    assert "360" in total  # tokens in: 3 x 20 + 300


def test_it_says_unpriced_when_a_call_had_no_price(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    html = page(alice_client, finished_run(workspace, alice, unpriced_call=True))
    calls = html[html.index('data-testid="calls"') :]
    assert '<span class="unpriced">unpriced</span>' in calls
    total = calls[calls.index('data-testid="calls-total"') :]
    assert "$0.00072" in total and "+ unpriced" in total


def test_it_shows_the_status_and_why_it_failed(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, status=RunStatus.FAILED)
    Run.objects.filter(pk=run.pk).update(error="Budget exceeded: $0.02 of $0.01.")
    html = page(alice_client, run)
    status = html[html.index('data-testid="run-status"') :][:600]
    assert "Failed" in status and "Budget exceeded: $0.02 of $0.01." in status


def test_it_never_puts_model_output_into_the_page_as_markup(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, texts={"m1": XSS_TEXT})
    html = page(alice_client, run)
    # The page's own scripts load from files; nothing inline, no handler, no script URL.
    assert script_vectors(html) == []
    assert "img" not in [tag for tag, _attrs in elements(html)]
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html  # shown, as text
    part = alice_client.get(f"/w/{workspace.slug}/runs/{run.pk}/part/?key=m1/0")
    assert part["Content-Type"].startswith("text/html")
    fragment = part.content.decode()
    assert script_vectors(fragment) == []
    assert {tag for tag, _attrs in elements(fragment)} <= {"p", "strong", "pre", "code", "span"}
    assert '<span class="nb">print</span>' in fragment  # highlighted on the server


def test_it_shows_what_is_streaming_now_from_the_live_state(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = start_run(simulated_pool(workspace, alice, ["sim-fast", "sim-slow"]), alice)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    run.refresh_from_db()
    live_part = {"kind": "candidate", "candidate": "m1", "round": 0, "status": "streaming"}

    async def write() -> None:
        client = redis_client()
        try:
            await LiveStore(client).write(
                str(run.pk),
                LiveWrite(seq=7, appends={"m1/0": "half an ans"}, parts={"m1/0": live_part}),
            )
        finally:
            await client.aclose()

    async_to_sync(write)()
    html = page(alice_client, run)
    # The database has no text yet: what shows came from Redis, with its seq for the socket.
    assert Candidate.objects.get(run=run, member="m1").text == ""
    assert "half an ans" in html
    live = json.loads(re.search(r'id="run-live" type="application/json">(.*?)</script>', html)[1])
    assert live["seq"] == 7 and live["terminal"] is False
    assert live["socket"] == f"/ws/runs/{run.pk}/"


def test_it_offers_cancel_while_running_and_rerun_once_ended(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    running = start_run(simulated_pool(workspace, alice, ["sim-fast"]), alice)
    html = page(bob_client, running)
    assert 'data-testid="cancel"' in html and 'data-testid="rerun"' not in html
    ended = finished_run(workspace, alice)
    html = page(bob_client, ended)
    assert 'data-testid="rerun"' in html and 'data-testid="cancel"' not in html


def test_it_cancels_a_queued_run_for_a_member(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    run = start_run(simulated_pool(workspace, alice, ["sim-fast", "sim-slow"]), alice)
    response = bob_client.post(f"/w/{workspace.slug}/runs/{run.pk}/cancel/")
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert set(run.candidates.values_list("status", flat=True)) == {CandidateStatus.CANCELLED}


def test_it_cancels_through_htmx_and_swaps_the_panels(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    run = start_run(simulated_pool(workspace, alice, ["sim-fast"]), alice)
    response = bob_client.post(
        f"/w/{workspace.slug}/runs/{run.pk}/cancel/", headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="run-head"' in html and 'hx-swap-oob="true"' in html
    assert "Cancelled" in html and 'data-testid="rerun"' in html


def test_it_says_a_run_already_ended_cannot_be_cancelled(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    response = bob_client.post(f"/w/{workspace.slug}/runs/{run.pk}/cancel/", follow=True)
    assert "This run has already ended." in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.FINISHED


def test_it_reruns_with_the_same_prompt_and_configuration(
    bob_client: Client, workspace: Workspace, alice: User, bob: User
) -> None:
    run = finished_run(workspace, alice, prompt="Compare B-trees and LSM trees.")
    response = bob_client.post(f"/w/{workspace.slug}/runs/{run.pk}/rerun/")
    new = Run.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302
    assert response["Location"] == f"/w/{workspace.slug}/runs/{new.pk}/"
    assert new.prompt == run.prompt and new.config == run.config
    assert new.rerun_of == run and new.created_by == bob
    assert new.status == RunStatus.QUEUED and new.candidates.count() == 3


def test_it_refuses_a_rerun_on_someone_elses_personal_credential(
    bob_client: Client, workspace: Workspace, alice: User
) -> None:
    credential = credential_create(
        workspace=workspace, user=alice, provider="simulated", label="Alice's own",
        scope=Scope.PERSONAL,
    )  # fmt: skip
    pool = pool_create(
        workspace=workspace,
        user=alice,
        data=PoolInput(
            name="Mine",
            members=[MemberInput(credential_id=credential.pk, model="sim-fast", custom_model=True)],
        ),
    )
    run = finished_run(workspace, alice, pool=pool)
    response = bob_client.post(f"/w/{workspace.slug}/runs/{run.pk}/rerun/", follow=True)
    assert "which you cannot use" in response.content.decode()
    assert Run.objects.count() == 1


def test_it_renders_the_panels_the_live_page_swaps_in(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice)
    html = alice_client.get(f"/w/{workspace.slug}/runs/{run.pk}/panels/").content.decode()
    for panel in ("run-head", "run-summary", "run-verdict", "run-calls"):
        assert re.search(rf'id="{panel}"[^>]*data-panel', html), panel
    assert "<html" not in html  # a fragment, not a page


def test_it_shows_totals_in_the_summary(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    html = page(alice_client, finished_run(workspace, alice))
    summary = html[html.index('id="run-summary"') :][:2000]
    assert "$0.00077" in summary
    assert "1.2 s" in summary  # wall time


def test_it_shows_debate_rounds_apart(
    alice_client: Client, workspace: Workspace, alice: User
) -> None:
    run = finished_run(workspace, alice, models=("sim-fast", "sim-slow"))
    Run.objects.filter(pk=run.pk).update(mode="debate")
    for member, position in (("m1", 0), ("m2", 1)):
        Candidate.objects.create(
            run=run, member=member, round=1, position=position, provider="sim", model="sim-fast",
            status=CandidateStatus.DONE, text=f"Revised {member}", cost=Decimal("0.0001"),
        )  # fmt: skip
    html = page(alice_client, run)
    assert 'data-round="0"' in html and 'data-round="1"' in html
    assert "First answers" in html and "Round 1" in html
    winners = [a for a in candidate_articles(html) if "is-winner" in a]
    # The winner's last round is the answer that won.
    assert len(winners) == 1 and 'data-part="m2/1"' in winners[0]
