"""The admin of credentials and prices: staff may rename a credential but not move it, and a
price they edit is theirs, kept through every sync of the built-in table."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.urls import reverse

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential, ModelPrice, PriceSource, Scope
from workbench.keys.prices import prices_sync_builtin
from workbench.keys.selectors import model_price

from .conftest import KEY_A

pytestmark = pytest.mark.django_db


class _FormFields(HTMLParser):
    """The fields a browser would submit from the page's main form, as it shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.data: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data[name] = a.get("value", "on" if a.get("type") == "checkbox" else "")
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.data[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def _form(client: Client, url: str) -> dict[str, str]:
    response = client.get(url)
    assert response.status_code == 200
    parser = _FormFields()
    parser.feed(response.content.decode())
    return parser.data


@pytest.fixture
def personal(alice: User, make_credential: Callable[..., Credential]) -> Credential:
    return make_credential(alice, provider="openai", label="Alice's", keys=[KEY_A])


def test_it_shows_who_may_use_a_credential_read_only(
    staff_client: Client, personal: Credential
) -> None:
    url = reverse("admin:keys_credential_change", args=[personal.pk])
    fields = _form(staff_client, url)
    for name in ("workspace", "scope", "owner", "provider", "base_url"):
        assert name not in fields, name
    assert fields["label"] == "Alice's"
    html = staff_client.get(url).content.decode()
    assert str(personal.workspace) in html and "alice" in html  # shown, as text
    assert KEY_A not in html


def test_it_renames_but_does_not_move_a_credential(
    staff_client: Client, personal: Credential, charlie: User
) -> None:
    elsewhere = Workspace.objects.create(name="Elsewhere", slug="elsewhere")
    url = reverse("admin:keys_credential_change", args=[personal.pk])
    data = _form(staff_client, url)
    # What a crafted POST would try: another workspace, a shared scope without the owner
    # (which would also break the owner-iff-personal constraint), another owner.
    data.update(
        label="Renamed",
        workspace=str(elsewhere.pk),
        scope=Scope.WORKSPACE,
        owner=str(charlie.pk),
        provider="anthropic",
        base_url="http://169.254.169.254/",
    )
    response = staff_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    personal.refresh_from_db()
    assert personal.label == "Renamed"
    assert (personal.workspace.slug, personal.scope, personal.owner.username) == (
        "acme",
        Scope.PERSONAL,
        "alice",
    )
    assert (personal.provider, personal.base_url) == ("openai", "")
    assert personal.keys.count() == 1


def test_it_leaves_adding_credentials_to_the_app(staff_client: Client) -> None:
    assert staff_client.get(reverse("admin:keys_credential_add")).status_code == 403


def test_it_keeps_a_price_edited_in_the_admin_through_the_sync(staff_client: Client) -> None:
    row = ModelPrice.objects.get(model="gpt-4o-mini")
    assert row.source == PriceSource.BUILTIN
    url = reverse("admin:keys_modelprice_change", args=[row.pk])
    data = _form(staff_client, url)
    data.update(input_per_million="0.5", output_per_million="1.5")
    assert staff_client.post(url, data).status_code == 302

    row.refresh_from_db()
    assert row.source == PriceSource.CUSTOM
    prices_sync_builtin()  # what every migrate runs, e.g. after an upgrade
    row.refresh_from_db()
    assert (row.input_per_million, row.output_per_million) == (Decimal("0.5"), Decimal("1.5"))
    assert row.source == PriceSource.CUSTOM
    price = model_price("gpt-4o-mini")
    assert price is not None and price.input_per_million == Decimal("0.5")


def test_it_marks_prices_edited_in_the_list_as_custom(staff_client: Client) -> None:
    row = ModelPrice.objects.get(model="gpt-4o-mini")
    changelist = reverse("admin:keys_modelprice_changelist") + "?q=gpt-4o-mini"
    data = _form(staff_client, changelist)
    assert data["form-0-id"] == str(row.pk)
    data.update({"form-0-output_per_million": "9", "_save": "Save"})
    data.pop("action", None)  # the bulk-action select: not part of saving the list
    assert staff_client.post(changelist, data).status_code == 302

    prices_sync_builtin()
    row.refresh_from_db()
    assert (row.output_per_million, row.source) == (Decimal("9"), PriceSource.CUSTOM)


def test_it_lets_staff_mark_a_built_in_model_unpriced(staff_client: Client) -> None:
    assert model_price("gpt-4o-mini") is not None
    row = ModelPrice.objects.get(model="gpt-4o-mini")
    url = reverse("admin:keys_modelprice_change", args=[row.pk])
    data = _form(staff_client, url) | {"unpriced": "on"}
    assert staff_client.post(url, data).status_code == 302

    prices_sync_builtin()  # an upgrade keeps the operator's choice
    row.refresh_from_db()
    assert row.unpriced and row.source == PriceSource.CUSTOM
    assert model_price("gpt-4o-mini") is None  # shown as unpriced, never as $0
