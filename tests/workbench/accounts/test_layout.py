"""The base layout every page extends, and the error pages."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from workbench.accounts.models import Workspace
from workbench.accounts.nav import SECTIONS

pytestmark = pytest.mark.django_db


def test_it_serves_vendored_htmx_and_no_cdn(alice_client: Client, workspace: Workspace) -> None:
    html = alice_client.get("/w/acme/").content.decode()
    assert "vendor/htmx/htmx.min.js" in html
    assert "css/app.css" in html
    assert "//cdn" not in html and "unpkg" not in html
    htmx = finders.find("vendor/htmx/htmx.min.js")
    assert htmx and 'version:"2.' in Path(htmx).read_text()
    versions = (Path(settings.BASE_DIR) / "static/vendor/VERSIONS.md").read_text()
    assert "htmx.org | 2." in versions


def test_it_gives_htmx_the_csrf_token(alice_client: Client, workspace: Workspace) -> None:
    response = alice_client.get("/w/acme/")
    token = response.context["csrf_token"]
    assert f"""hx-headers='{{"X-CSRFToken": "{token}"}}'""" in response.content.decode()


def test_it_shows_messages_as_dismissible_toasts(alice_client: Client) -> None:
    response = alice_client.post(
        reverse("accounts:account_settings"),
        {"email": "alice@example.com", "time_zone": "UTC"},
        follow=True,
    )
    html = response.content.decode()
    assert 'class="toast toast-success"' in html
    assert "Your settings have been saved." in html
    assert "data-dismiss" in html


def test_it_shows_the_user_menu_with_a_post_logout(alice_client: Client) -> None:
    html = alice_client.get(reverse("accounts:account_settings")).content.decode()
    assert f'action="{reverse("accounts:logout")}"' in html
    assert 'method="post"' in html


def test_it_links_every_section_to_its_own_page(alice_client: Client, workspace: Workspace) -> None:
    links = alice_client.get("/w/acme/").context["nav_links"]
    assert [link.label for link in links] == [section.label for section in SECTIONS]
    assert len({link.url for link in links}) == len(links)  # no section borrows another's page
    for link in links:
        response = alice_client.get(link.url)
        assert response.status_code == 200, link.url
        # On its own page, that section and only it is highlighted.
        active = [other.label for other in response.context["nav_links"] if other.active]
        assert active == [link.label], link.url


def test_it_keeps_anonymous_pages_free_of_workspace_navigation(client: Client) -> None:
    html = client.get(reverse("accounts:login")).content.decode()
    assert "Switch workspace" not in html


def test_it_renders_a_styled_404(alice_client: Client) -> None:
    response = alice_client.get("/no/such/page/")
    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert b"css/app.css" in response.content


def test_it_renders_a_styled_403_with_the_reason(vera_client: Client, workspace: Workspace) -> None:
    response = vera_client.get("/w/acme/settings/")
    assert response.status_code == 403
    assert b"This needs the admin role or higher." in response.content
    assert b"css/app.css" in response.content


def test_it_renders_a_500_page_without_a_request() -> None:
    html = render_to_string("500.html")
    assert "Something went wrong on our side" in html
    assert "css/app.css" in html
