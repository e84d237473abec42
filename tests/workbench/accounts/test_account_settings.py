from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from workbench.accounts.models import User

pytestmark = pytest.mark.django_db

URL = reverse("accounts:account_settings")


def test_it_shows_the_current_settings(alice_client: Client) -> None:
    response = alice_client.get(URL)
    assert response.status_code == 200
    assert response.context["form"].initial == {"email": "alice@example.com", "time_zone": "UTC"}


def test_it_saves_email_and_time_zone(alice_client: Client, alice: User) -> None:
    response = alice_client.post(URL, {"email": "a@example.org", "time_zone": "Asia/Tokyo"})
    assert response["Location"] == URL
    alice.refresh_from_db()
    assert (alice.email, alice.time_zone) == ("a@example.org", "Asia/Tokyo")


def test_it_refuses_an_email_another_account_uses(
    alice_client: Client, alice: User, charlie: User
) -> None:
    response = alice_client.post(URL, {"email": "CHARLIE@example.com", "time_zone": "UTC"})
    assert response.status_code == 200
    assert response.context["form"].errors["email"] == ["Another account uses that email."]
    alice.refresh_from_db()
    assert alice.email == "alice@example.com"


def test_it_refuses_an_unknown_time_zone(alice_client: Client, alice: User) -> None:
    response = alice_client.post(URL, {"email": "alice@example.com", "time_zone": "Mars/Base"})
    assert "time_zone" in response.context["form"].errors
    alice.refresh_from_db()
    assert alice.time_zone == "UTC"


def test_it_needs_a_login(client: Client) -> None:
    assert client.get(URL)["Location"].startswith(reverse("accounts:login"))
