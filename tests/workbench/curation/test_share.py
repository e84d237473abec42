"""Share links: made and revoked by members, opened by anyone holding the token."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.workbench.runs.pages import XSS_TEXT, finished_run, script_vectors
from workbench.accounts.models import User, Workspace
from workbench.curation.models import ShareLink
from workbench.curation.services import judgment_save, share_link_create
from workbench.runs.models import ProviderCall, Run

pytestmark = pytest.mark.django_db


def url(run: Run, action: str) -> str:
    return f"/w/{run.workspace.slug}/runs/{run.pk}/curation/{action}"


@pytest.fixture
def run(workspace: Workspace, alice: User, bob: User, vera: User) -> Run:
    return finished_run(workspace, alice, texts={"m1": XSS_TEXT})


def test_it_lets_members_make_links_with_an_unguessable_token(bob_client: Client, run: Run) -> None:
    response = bob_client.post(url(run, "share/"), {"show_costs": "on", "expires_in_days": "7"})
    assert response.status_code == 302
    link = ShareLink.objects.get()
    assert len(link.token) >= 43 and link.show_costs
    assert timedelta(days=6) < link.expires_at - timezone.now() <= timedelta(days=7)


def test_it_refuses_viewers_and_outsiders(
    vera_client: Client, charlie_client: Client, run: Run, alice: User
) -> None:
    assert vera_client.post(url(run, "share/"), {}).status_code == 403
    assert charlie_client.post(url(run, "share/"), {}).status_code == 404
    link = share_link_create(run=run, user=alice)
    assert vera_client.post(url(run, f"share/{link.pk}/revoke/")).status_code == 403
    assert charlie_client.post(url(run, f"share/{link.pk}/revoke/")).status_code == 404
    link.refresh_from_db()
    assert link.is_live


def test_it_opens_a_live_link_for_anonymous_visitors(run: Run, alice: User, bob: User) -> None:
    judgment_save(run=run, user=bob, choice="pick", winner="m3", rationale="clearest")
    link = share_link_create(run=run, user=alice)
    response = Client().get(f"/s/{link.token}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert response["Referrer-Policy"] == "no-referrer"
    assert run.prompt in html
    assert "sim-fast" in html and "sim-slow" in html  # the answers, by model
    assert "Answer B is the most complete." in html  # the verdict
    assert "clearest" in html  # people's picks
    assert "bob" not in html  # but not who they are
    assert script_vectors(html) == []  # model output rendered safely


def test_it_never_shows_keys_labels_or_call_details(run: Run, alice: User) -> None:
    ProviderCall.objects.filter(run=run).update(key_label="team-key-7", error="upstream said X")
    label = next(iter(run.config["providers"].values()))["label"]
    html = Client().get(f"/s/{share_link_create(run=run, user=alice).token}/").content.decode()
    assert "team-key-7" not in html and "upstream said X" not in html
    assert label not in html
    assert "$" not in html  # costs hidden unless chosen


def test_it_shows_costs_when_the_link_says_so(run: Run, alice: User) -> None:
    link = share_link_create(run=run, user=alice, show_costs=True)
    html = Client().get(f"/s/{link.token}/").content.decode()
    assert "$0.00012" in html


def test_it_shows_nothing_of_other_runs(workspace: Workspace, run: Run, alice: User) -> None:
    other = finished_run(workspace, alice, prompt="A secret other prompt")
    html = Client().get(f"/s/{share_link_create(run=run, user=alice).token}/").content.decode()
    assert "A secret other prompt" not in html
    assert str(other.pk) not in html


def test_it_404s_revoked_expired_and_unknown_links(
    alice_client: Client, run: Run, alice: User
) -> None:
    revoked = share_link_create(run=run, user=alice)
    assert alice_client.post(url(run, f"share/{revoked.pk}/revoke/")).status_code == 302
    expired = share_link_create(run=run, user=alice, expires_in_days=1)
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    anonymous = Client()
    assert anonymous.get(f"/s/{revoked.token}/").status_code == 404
    assert anonymous.get(f"/s/{expired.token}/").status_code == 404
    assert anonymous.get("/s/not-a-token/").status_code == 404
    # A logged-in member gets no more out of a dead link than anyone else.
    assert alice_client.get(f"/s/{revoked.token}/").status_code == 404


def test_it_does_not_revoke_links_of_another_run_through_this_one(
    alice_client: Client, workspace: Workspace, alice: User, run: Run
) -> None:
    other = finished_run(workspace, alice)
    link = share_link_create(run=other, user=alice)
    assert alice_client.post(url(run, f"share/{link.pk}/revoke/")).status_code == 404
