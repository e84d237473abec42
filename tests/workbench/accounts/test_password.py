from __future__ import annotations

import re

import pytest
from django.core import mail
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.workbench.conftest import PASSWORD
from workbench.accounts.models import User

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-brand-new-passphrase-77"


def test_it_changes_the_password(alice_client: Client, alice: User) -> None:
    response = alice_client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response["Location"] == reverse("accounts:account_settings")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)
    # The session that changed it stays logged in.
    assert alice_client.get(reverse("accounts:account_settings")).status_code == 200


def test_it_refuses_a_wrong_old_password(alice_client: Client, alice: User) -> None:
    response = alice_client.post(
        reverse("accounts:password_change"),
        {"old_password": "nope", "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert response.status_code == 200
    assert "old_password" in response.context["form"].errors
    alice.refresh_from_db()
    assert alice.check_password(PASSWORD)


def test_it_asks_anonymous_visitors_to_log_in_first(client: Client) -> None:
    response = client.get(reverse("accounts:password_change"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login"))


def test_it_resets_a_forgotten_password_by_email(client: Client, alice: User) -> None:
    response = client.post(reverse("accounts:password_reset"), {"email": "alice@example.com"})
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your Fusion Workbench password"
    link = re.search(r"http://testserver(/password-reset/\S+/)", mail.outbox[0].body)
    assert link is not None

    # Django swaps the token for a session marker on the first visit.
    form_page = client.get(link.group(1), follow=True)
    assert form_page.context["validlink"]
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD},
    )
    assert done["Location"] == reverse("accounts:password_reset_complete")
    alice.refresh_from_db()
    assert alice.check_password(NEW_PASSWORD)


def test_it_does_not_say_whether_an_email_has_an_account(client: Client) -> None:
    response = client.post(reverse("accounts:password_reset"), {"email": "nobody@example.com"})
    assert response["Location"] == reverse("accounts:password_reset_done")
    assert mail.outbox == []


def test_it_rejects_a_bad_reset_link(client: Client, alice: User) -> None:
    response = client.get("/password-reset/MQ/bad-token/", follow=True)
    assert response.status_code == 200
    assert not response.context["validlink"]
    assert b"This link does not work" in response.content


class TestResetThrottle:
    """Reset requests are limited per address and per client network: no flooding an inbox."""

    @pytest.fixture(autouse=True)
    def _few_requests(self, settings: SettingsWrapper) -> None:
        settings.PASSWORD_RESET_THROTTLE_ATTEMPTS = 2
        settings.PASSWORD_RESET_THROTTLE_WINDOW_S = 600

    @staticmethod
    def _reset(email: str, ip: str) -> HttpResponse:
        return Client().post(reverse("accounts:password_reset"), {"email": email}, REMOTE_ADDR=ip)

    def test_it_stops_sending_mail_to_one_address(self, alice: User) -> None:
        for n in range(2):
            response = self._reset("alice@example.com", f"10.0.0.{n}")
            assert response["Location"] == reverse("accounts:password_reset_done")
        blocked = self._reset("Alice@Example.com", "10.0.0.9")
        assert blocked.status_code == 429
        assert "Too many password-reset requests" in blocked.content.decode()
        assert "Wait 10 minutes" in blocked.content.decode()
        assert len(mail.outbox) == 2

    def test_it_stops_one_network_asking_for_many_addresses(self, alice: User) -> None:
        for name in ("x", "y"):
            self._reset(f"{name}@example.com", "10.1.1.1")
        assert self._reset("alice@example.com", "10.1.1.1").status_code == 429
        assert mail.outbox == []
        # Another network may still ask for alice's link.
        assert self._reset("alice@example.com", "10.2.2.2").status_code == 302
        assert len(mail.outbox) == 1

    def test_it_counts_unknown_addresses_alike(self) -> None:
        """Known or not, the answers are the same: the throttle tells nobody who has an
        account."""
        statuses = [self._reset("nobody@example.com", "10.3.0.1").status_code for _ in range(3)]
        assert statuses == [302, 302, 429]
