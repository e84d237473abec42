from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from tests.workbench.conftest import PASSWORD
from workbench.accounts.models import Membership, Role, User, Workspace

pytestmark = pytest.mark.django_db

URL = reverse("accounts:signup")


def _form(**overrides: str) -> dict[str, str]:
    return {
        "username": "dana",
        "email": "dana@example.com",
        "password": PASSWORD,
        "password_again": PASSWORD,
        "time_zone": "Europe/Paris",
        **overrides,
    }


def test_it_shows_the_form(client: Client) -> None:
    response = client.get(URL)
    assert response.status_code == 200
    assert b"Create your account" in response.content


def test_it_creates_the_user_and_a_personal_workspace_they_own(client: Client) -> None:
    response = client.post(URL, _form())

    user = User.objects.get(username="dana")
    workspace = Workspace.objects.get(memberships__user=user)
    assert workspace.personal
    assert Membership.objects.get(user=user, workspace=workspace).role == Role.OWNER
    assert user.time_zone == "Europe/Paris"
    assert user.check_password(PASSWORD)
    # Logged in, and "/" leads to the new workspace.
    assert response.status_code == 302
    home = client.get(response["Location"])
    assert home["Location"] == reverse("accounts:workspace_home", kwargs={"ws": workspace.slug})


def test_it_logs_the_new_user_in(client: Client) -> None:
    client.post(URL, _form())
    response = client.get(reverse("accounts:account_settings"))
    assert response.status_code == 200
    assert response.context["user"].username == "dana"


def test_it_follows_a_safe_next(client: Client) -> None:
    response = client.post(URL + "?next=/invite/abc/", _form())
    assert response["Location"] == "/invite/abc/"


def test_it_ignores_a_next_to_another_site(client: Client) -> None:
    response = client.post(URL + "?next=https://evil.example/", _form())
    assert response["Location"] == reverse("home")


def test_it_falls_back_to_utc_for_an_unknown_time_zone(client: Client) -> None:
    client.post(URL, _form(time_zone="Mars/Olympus"))
    assert User.objects.get(username="dana").time_zone == "UTC"


def test_it_refuses_a_taken_username_whatever_its_case(client: Client, alice: User) -> None:
    response = client.post(URL, _form(username="ALICE"))
    assert response.status_code == 200
    assert "That username is taken." in response.context["form"].errors["username"]
    assert User.objects.count() == 1


def test_it_refuses_a_taken_email(client: Client, alice: User) -> None:
    response = client.post(URL, _form(email="Alice@Example.com"))
    assert response.status_code == 200
    assert "already exists" in response.context["form"].errors["email"][0]
    assert not User.objects.filter(username="dana").exists()


def test_it_refuses_a_weak_password(client: Client) -> None:
    response = client.post(URL, _form(password="12345678", password_again="12345678"))
    assert response.status_code == 200
    errors = response.context["form"].errors["password"][0]
    assert "too common" in errors or "entirely numeric" in errors
    assert not User.objects.exists()


def test_it_refuses_a_password_like_the_email(client: Client) -> None:
    response = client.post(
        URL, _form(password="dana@example.com!", password_again="dana@example.com!")
    )
    assert "password" in response.context["form"].errors
    assert not User.objects.exists()


def test_it_refuses_two_different_passwords(client: Client) -> None:
    response = client.post(URL, _form(password_again=PASSWORD + "x"))
    assert response.context["form"].errors["password_again"] == ["The two passwords differ."]
    assert not User.objects.exists()


def test_it_refuses_a_username_with_spaces(client: Client) -> None:
    response = client.post(URL, _form(username="da na"))
    assert "username" in response.context["form"].errors
    assert not User.objects.exists()


def test_it_gives_a_second_user_with_a_similar_name_a_distinct_slug(client: Client) -> None:
    client.post(URL, _form(username="dana"))
    Client().post(URL, _form(username="Dana.", email="other@example.com"))
    slugs = set(Workspace.objects.values_list("slug", flat=True))
    assert slugs == {"dana", "dana-2"}


def test_it_sends_a_logged_in_user_on(alice_client: Client) -> None:
    response = alice_client.get(URL)
    assert response.status_code == 302
