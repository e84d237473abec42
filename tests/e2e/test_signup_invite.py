"""Sign up, create a team workspace, invite bob by link; bob joins and shows in the members."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Page, expect
from pytest_django.live_server_helper import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-passphrase-9"


def _sign_up(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password, again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()


def test_it_signs_up_creates_a_workspace_and_invites_bob(
    live_server: LiveServer,
    new_page: Callable[[], Page],
    screenshot: Callable[[Page, str], None],
) -> None:
    alice = new_page()
    alice.goto(f"{live_server.url}/login/")
    screenshot(alice, "login")
    alice.get_by_role("link", name="Create an account").click()
    screenshot(alice, "signup")
    _sign_up(alice, "alice")

    # A personal workspace, with a welcome toast.
    expect(alice).to_have_url(re.compile(r"/w/alice/$"))
    expect(alice.locator(".toast")).to_contain_text("Welcome, alice!")

    # A team workspace, created from the switcher.
    alice.get_by_label("Switch workspace").click()
    alice.get_by_role("link", name="+ New workspace").click()
    alice.get_by_label("Name").fill("Acme")
    alice.get_by_role("button", name="Create workspace").click()
    expect(alice).to_have_url(re.compile(r"/w/acme/members/$"))
    expect(alice.get_by_test_id("current-workspace")).to_have_text("Acme")

    # Invite bob: htmx inserts the row with the link to copy.
    form = alice.locator("#invite-form")
    form.get_by_label("Role").select_option("member")
    form.get_by_label("For (email, optional)").fill("bob@example.com")
    form.get_by_role("button", name="Create invite link").click()
    row = alice.get_by_test_id("invite-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("bob@example.com")
    link = row.get_by_test_id("invite-link").input_value()
    assert re.fullmatch(rf"{re.escape(live_server.url)}/invite/[\w-]+/", link)
    # The form was swapped for a blank one, ready for the next invitation.
    expect(alice.get_by_label("For (email, optional)")).to_have_value("")
    screenshot(alice, "members")

    # bob opens the link in his own browser, signs up and accepts.
    bob = new_page()
    bob.goto(link)
    expect(bob.get_by_role("heading", name="Join Acme")).to_be_visible()
    screenshot(bob, "invite")
    bob.get_by_role("link", name="Create an account").click()
    _sign_up(bob, "bob")
    expect(bob).to_have_url(link)
    bob.get_by_role("button", name="Accept and join as bob").click()
    expect(bob).to_have_url(re.compile(r"/w/acme/$"))
    expect(bob.locator(".toast")).to_contain_text("You have joined Acme as member.")
    screenshot(bob, "workspace_home")

    # alice sees him in the member list; the invitation is no longer pending.
    alice.reload()
    member = alice.locator('[data-testid="member-row"][data-username="bob"]')
    expect(member).to_be_visible()
    expect(member.get_by_test_id("role-select")).to_have_value("member")
    expect(alice.get_by_test_id("invite-row")).to_have_count(0)

    # Role changes go through htmx and re-render the row in place.
    member.get_by_test_id("role-select").select_option("admin")
    expect(alice.locator(".toast").last).to_contain_text("bob is now Admin.")
    expect(
        alice.locator('[data-testid="member-row"][data-username="bob"]').get_by_test_id(
            "role-select"
        )
    ).to_have_value("admin")
    screenshot(alice, "members_after")
