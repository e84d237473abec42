"""Who may reach each workspace page, for owner, member, viewer, outsider and anonymous.

Every URL under /w/<slug>/ of this app is listed here; a new one must be added (the last test
fails otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse

from workbench.accounts import services
from workbench.accounts import urls as accounts_urls
from workbench.accounts.models import Invitation, Membership, Role, User, Workspace

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Page:
    name: str
    method: str
    min_role: Role
    data: dict[str, str] = field(default_factory=dict)
    target: str | None = None  # "membership" or "invitation": the id the URL needs


PAGES = [
    Page("workspace_home", "get", Role.VIEWER),
    Page("workspace_members", "get", Role.VIEWER),
    Page("workspace_settings", "get", Role.ADMIN),
    Page("workspace_settings", "post", Role.ADMIN, {"name": "Renamed"}),
    Page("workspace_delete", "post", Role.OWNER, {"confirm": "acme"}),
    Page("membership_role", "post", Role.ADMIN, {"role": "admin"}, "membership"),
    Page("membership_remove", "post", Role.ADMIN, target="membership"),
    Page("invitation_create", "post", Role.ADMIN, {"role": "member"}),
    Page("invitation_revoke", "post", Role.ADMIN, target="invitation"),
    # Leaving changes only one's own access, so every member may.
    Page("membership_leave", "post", Role.VIEWER),
]
RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


@pytest.fixture
def target_membership(make_user: Callable[..., User], workspace: Workspace) -> Membership:
    """Someone to change or remove, so the people making requests stay members."""
    user = make_user("tina", workspace=workspace, role=Role.MEMBER)
    return Membership.objects.get(user=user, workspace=workspace)


@pytest.fixture
def pending_invitation(alice: User, workspace: Workspace) -> Invitation:
    return services.invitation_create(workspace=workspace, actor=alice, role=Role.MEMBER)


def _url(page: Page, membership: Membership, invitation: Invitation) -> str:
    kwargs: dict[str, object] = {"ws": "acme"}
    if page.target == "membership":
        kwargs["membership_id"] = membership.pk
    if page.target == "invitation":
        kwargs["invitation_id"] = invitation.pk
    return reverse(f"accounts:{page.name}", kwargs=kwargs)


def _state(workspace: Workspace) -> tuple[object, ...]:
    workspace.refresh_from_db()
    return (
        workspace.name,
        sorted(workspace.memberships.values_list("user__username", "role")),
        sorted(workspace.invitations.values_list("pk", "revoked")),
    )


def _request(client: Client, page: Page, url: str) -> HttpResponse:
    return getattr(client, page.method)(url, page.data)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.method}-{p.name}")
def test_it_hides_every_page_from_outsiders(
    page: Page,
    charlie_client: Client,
    workspace: Workspace,
    target_membership: Membership,
    pending_invitation: Invitation,
) -> None:
    before = _state(workspace)
    response = _request(charlie_client, page, _url(page, target_membership, pending_invitation))
    assert response.status_code == 404
    assert _state(workspace) == before


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.method}-{p.name}")
def test_it_sends_anonymous_visitors_to_log_in(
    page: Page,
    client: Client,
    workspace: Workspace,
    target_membership: Membership,
    pending_invitation: Invitation,
) -> None:
    before = _state(workspace)
    response = _request(client, page, _url(page, target_membership, pending_invitation))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))
    assert _state(workspace) == before


@pytest.mark.parametrize("who", ["vera", "bob"])
@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.method}-{p.name}")
def test_it_allows_each_role_only_what_it_may(
    who: str,
    page: Page,
    request: pytest.FixtureRequest,
    workspace: Workspace,
    target_membership: Membership,
    pending_invitation: Invitation,
) -> None:
    client: Client = request.getfixturevalue(f"{who}_client")
    role = Role.VIEWER if who == "vera" else Role.MEMBER
    before = _state(workspace)
    response = _request(client, page, _url(page, target_membership, pending_invitation))
    if RANK[role] >= RANK[page.min_role]:
        assert response.status_code in (200, 302)
    else:
        assert response.status_code == 403
        assert b"You cannot do that here" in response.content
        assert _state(workspace) == before


@pytest.mark.parametrize("page", PAGES, ids=lambda p: f"{p.method}-{p.name}")
def test_it_lets_the_owner_do_everything(
    page: Page,
    alice_client: Client,
    workspace: Workspace,
    target_membership: Membership,
    pending_invitation: Invitation,
) -> None:
    if page.name == "membership_leave":
        # alice is the last owner: let through, then refused by the rule (test_members.py).
        response = alice_client.post(_url(page, target_membership, pending_invitation))
        assert response.status_code == 302
        assert workspace.memberships.filter(user__username="alice").exists()
        return
    before = _state(workspace) if page.method == "post" else None
    response = _request(alice_client, page, _url(page, target_membership, pending_invitation))
    assert response.status_code in (200, 302)
    if page.method == "post" and page.name != "workspace_delete":
        assert _state(workspace) != before


def test_it_refuses_writes_on_read_only_pages(vera_client: Client, workspace: Workspace) -> None:
    for name in ("workspace_home", "workspace_members"):
        url = reverse(f"accounts:{name}", kwargs={"ws": "acme"})
        assert vera_client.post(url).status_code == 405


def test_it_covers_every_workspace_url() -> None:
    workspace_urls = {p.name for p in accounts_urls.urlpatterns if "<slug:ws>" in str(p.pattern)}
    assert workspace_urls == {page.name for page in PAGES}
