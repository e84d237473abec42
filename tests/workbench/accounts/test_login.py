from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from pytest_django.fixtures import Settings as SettingsWrapper

from tests.workbench.conftest import PASSWORD
from workbench.accounts.models import User, Workspace

pytestmark = pytest.mark.django_db

LOGIN = reverse("accounts:login")


def _login(client: Client, username: str, password: str, **extra: str) -> HttpResponse:
    return client.post(LOGIN, {"username": username, "password": password}, **extra)


def test_it_shows_the_form(client: Client) -> None:
    response = client.get(LOGIN)
    assert response.status_code == 200
    assert b"Log in" in response.content


def test_it_logs_in_and_goes_to_the_last_workspace(
    client: Client, alice: User, workspace: Workspace
) -> None:
    response = _login(client, "alice", PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    home = client.get(reverse("home"))
    assert home["Location"] == reverse("accounts:workspace_home", kwargs={"ws": "acme"})


def test_it_follows_next(client: Client, alice: User) -> None:
    response = client.post(
        LOGIN, {"username": "alice", "password": PASSWORD, "next": "/workspaces/"}
    )
    assert response["Location"] == "/workspaces/"


def test_it_refuses_a_wrong_password(client: Client, alice: User) -> None:
    response = _login(client, "alice", "nope")
    assert response.status_code == 200
    assert "correct username and password" in response.context["form"].non_field_errors()[0]
    assert "_auth_user_id" not in client.session


def test_it_sends_anonymous_visitors_to_log_in(client: Client, workspace: Workspace) -> None:
    url = reverse("accounts:workspace_home", kwargs={"ws": "acme"})
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"] == f"{LOGIN}?next={url}"


def test_it_logs_out_on_post(alice_client: Client) -> None:
    response = alice_client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in alice_client.session


def test_it_does_not_log_out_on_get(alice_client: Client) -> None:
    response = alice_client.get(reverse("accounts:logout"))
    assert response.status_code == 405
    assert "_auth_user_id" in alice_client.session


class TestThrottle:
    @pytest.fixture(autouse=True)
    def _few_attempts(self, settings: SettingsWrapper) -> None:
        settings.LOGIN_THROTTLE_ATTEMPTS = 3
        settings.LOGIN_THROTTLE_WINDOW_S = 60

    def test_it_refuses_the_right_password_after_too_many_failures(
        self, client: Client, alice: User
    ) -> None:
        for _ in range(3):
            assert _login(client, "alice", "wrong").status_code == 200
        response = _login(client, "alice", PASSWORD)
        assert response.status_code == 429
        assert "Too many failed log-in attempts" in response.content.decode()
        assert "Wait 1 minute" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_it_counts_failures_per_username_across_addresses(
        self, client: Client, alice: User
    ) -> None:
        for n in range(3):
            _login(client, "alice", "wrong", REMOTE_ADDR=f"10.0.0.{n}")
        response = _login(Client(), "ALICE", PASSWORD, REMOTE_ADDR="10.0.0.99")
        assert response.status_code == 429

    def test_it_counts_failures_per_address_across_usernames(
        self, client: Client, alice: User
    ) -> None:
        for name in ("x", "y", "z"):
            _login(client, name, "wrong", REMOTE_ADDR="10.1.1.1")
        assert _login(client, "alice", PASSWORD, REMOTE_ADDR="10.1.1.1").status_code == 429
        # Another address may still log in as alice.
        assert _login(Client(), "alice", PASSWORD, REMOTE_ADDR="10.2.2.2").status_code == 302

    def test_it_allows_attempts_below_the_limit(self, client: Client, alice: User) -> None:
        for _ in range(2):
            _login(client, "alice", "wrong")
        assert _login(client, "alice", PASSWORD).status_code == 302

    def test_it_forgets_the_username_failures_after_a_success(
        self, client: Client, alice: User
    ) -> None:
        for _ in range(2):
            _login(client, "alice", "wrong", REMOTE_ADDR="10.3.0.1")
        assert _login(client, "alice", PASSWORD, REMOTE_ADDR="10.3.0.2").status_code == 302
        for _ in range(2):
            _login(Client(), "alice", "wrong", REMOTE_ADDR="10.3.0.3")
        assert _login(Client(), "alice", PASSWORD, REMOTE_ADDR="10.3.0.4").status_code == 302

    def test_it_trusts_only_the_last_forwarded_address_behind_a_proxy(
        self, client: Client, alice: User, settings: SettingsWrapper
    ) -> None:
        settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
        for n in range(3):
            # The attacker varies the left part; the proxy appends the real address.
            _login(client, f"u{n}", "wrong", HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.7")
        blocked = _login(client, "alice", PASSWORD, HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7")
        assert blocked.status_code == 429
        other = _login(Client(), "alice", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.8")
        assert other.status_code == 302


class TestAdminThrottle:
    """/admin/login/ is throttled like /login/, and with the same counts."""

    ADMIN_LOGIN = "/admin/login/"

    @pytest.fixture(autouse=True)
    def _few_attempts(self, settings: SettingsWrapper) -> None:
        settings.LOGIN_THROTTLE_ATTEMPTS = 3
        settings.LOGIN_THROTTLE_WINDOW_S = 60

    def _admin_login(self, client: Client, username: str, password: str) -> HttpResponse:
        return client.post(
            self.ADMIN_LOGIN, {"username": username, "password": password, "next": "/admin/"}
        )

    def test_it_logs_staff_in(self, client: Client, root: User) -> None:
        response = self._admin_login(client, "root", PASSWORD)
        assert response.status_code == 302
        assert response["Location"] == "/admin/"

    def test_it_refuses_the_right_password_after_too_many_failures(
        self, client: Client, root: User
    ) -> None:
        for _ in range(3):
            assert self._admin_login(client, "root", "wrong").status_code == 200
        response = self._admin_login(client, "root", PASSWORD)
        assert response.status_code == 429
        assert "Too many failed log-in attempts" in response.content.decode()
        assert "_auth_user_id" not in client.session

    def test_it_shares_the_count_with_the_app_login(self, client: Client, root: User) -> None:
        # Alternating between the two forms does not double the guesses.
        _login(client, "root", "wrong", REMOTE_ADDR="10.9.0.1")
        self._admin_login(Client(REMOTE_ADDR="10.9.0.2"), "root", "wrong")
        _login(client, "root", "wrong", REMOTE_ADDR="10.9.0.3")
        assert self._admin_login(Client(), "root", PASSWORD).status_code == 429
        assert _login(Client(), "root", PASSWORD).status_code == 429

    def test_it_still_refuses_non_staff(self, client: Client, alice: User) -> None:
        response = self._admin_login(client, "alice", PASSWORD)
        assert response.status_code == 200
        assert "_auth_user_id" not in client.session
