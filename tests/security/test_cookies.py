"""The cookies a log-in sets, as the browser receives them (the ``Set-Cookie`` headers), with the
production flags on: the session cookie Secure, HttpOnly and SameSite=Lax; the CSRF cookie
Secure and SameSite=Lax. ``tests/workbench/lib/test_settings.py`` checks that production
settings turn those flags on."""

from __future__ import annotations

import pytest
from django.test import Client, override_settings

from tests.workbench import conftest as people
from workbench.accounts.models import User

pytestmark = pytest.mark.django_db

_fast_and_isolated = people._fast_and_isolated
make_user, alice = people.make_user, people.alice


@override_settings(SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True, SECURE_SSL_REDIRECT=False)
def test_it_sets_the_session_and_csrf_cookies_with_their_flags(alice: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.get("/login/")  # the form sets the CSRF cookie
    csrf = client.cookies["csrftoken"]
    response = client.post(
        "/login/",
        {"username": "alice", "password": people.PASSWORD, "csrfmiddlewaretoken": csrf.value},
    )

    assert response.status_code == 302, response.content[:300]
    session = response.cookies["sessionid"]
    assert session.value
    assert (session["secure"], session["httponly"], session["samesite"]) == (True, True, "Lax")
    assert (csrf["secure"], csrf["samesite"]) == (True, "Lax")
    header = session.output(header="").strip()
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header, header
