"""REST routes for credentials: keys go in (write-only), only their last four come out."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Literal

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from ninja import Field, Router, Schema
from pydantic import SecretStr

from fusion.costs import Price
from fusion.providers.registry import PROVIDER_KINDS
from workbench.accounts.models import Role
from workbench.api.access import api_membership, api_user
from workbench.keys import access, selectors, services
from workbench.keys.models import CatalogModel, Credential, Scope
from workbench.keys.services import MAX_KEYS

router = Router(tags=["credentials"])

ProviderKindName = Literal[tuple(PROVIDER_KINDS)]  # type: ignore[valid-type]
ScopeName = Literal["personal", "workspace"]


class KeyHintOut(Schema):
    id: int
    last_four: str


class CredentialOut(Schema):
    id: int
    label: str
    provider: str
    provider_label: str
    scope: str
    base_url: str
    owner: str | None
    key_hints: list[KeyHintOut]
    catalog_size: int
    checked_at: datetime | None
    check_ok: bool | None
    check_message: str
    can_manage: bool
    created_at: datetime


class CredentialIn(Schema):
    provider: ProviderKindName  # type: ignore[valid-type]
    label: str = Field(min_length=1, max_length=80)
    scope: ScopeName = "personal"
    base_url: str = Field("", max_length=500)
    keys: list[SecretStr] = Field(
        default_factory=list, max_length=MAX_KEYS, description="Write-only API keys."
    )


class CredentialPatch(Schema):
    label: str | None = Field(None, min_length=1, max_length=80)
    base_url: str | None = Field(None, max_length=500)
    keys: list[SecretStr] | None = Field(
        None, max_length=MAX_KEYS, description="Replaces every key when given."
    )
    add_keys: list[SecretStr] = Field(default_factory=list, max_length=MAX_KEYS)
    remove_key_ids: list[int] = Field(default_factory=list)


class KeyCheckOut(Schema):
    key: str  # "…abcd", or "no key"
    ok: bool
    error: str | None


class CheckOut(Schema):
    ok: bool
    message: str
    keys: list[KeyCheckOut]
    models: list[str]


class PriceOut(Schema):
    input_per_million: Decimal
    output_per_million: Decimal


class CatalogEntryOut(Schema):
    model: str
    source: str
    price: PriceOut | None
    unpriced: bool


class ModelIn(Schema):
    model: str = Field(min_length=1, max_length=200)


def _out(request: HttpRequest, credential: Credential) -> CredentialOut:
    user = api_user(request)
    return CredentialOut(
        id=credential.pk,
        label=credential.label,
        provider=credential.provider,
        provider_label=credential.kind.label,
        scope=credential.scope,
        base_url=credential.base_url,
        owner=credential.owner.username if credential.owner_id else None,  # type: ignore[union-attr]
        key_hints=[KeyHintOut(id=k.pk, last_four=k.hint) for k in credential.keys.all()],
        catalog_size=credential.catalog.count(),
        checked_at=credential.checked_at,
        check_ok=credential.check_ok,
        check_message=credential.check_message,
        can_manage=access.can_manage(user, credential),
        created_at=credential.created_at,
    )


def _secrets(values: list[SecretStr] | None) -> list[str]:
    return [v.get_secret_value() for v in values or []]


def _get(request: HttpRequest, ws: str, credential_id: int, min_role: str) -> Credential:
    """The credential, 404 when the caller may not see it, 403 when their role is too low."""
    membership = api_membership(request, ws)
    credential = selectors.credential_get(api_user(request), membership.workspace, credential_id)
    if not membership.has_role(min_role):
        raise PermissionDenied(f"This needs the {min_role} role or higher.")
    return credential


def _catalog_out(entry: CatalogModel, prices: dict[str, Price]) -> CatalogEntryOut:
    price = selectors.model_price(entry.model_id, prices)
    return CatalogEntryOut(
        model=entry.model_id,
        source=entry.source,
        price=PriceOut(
            input_per_million=price.input_per_million,
            output_per_million=price.output_per_million,
        )
        if price
        else None,
        unpriced=price is None,
    )


@router.get("/workspaces/{ws}/credentials", response=list[CredentialOut])
def list_credentials(request: HttpRequest, ws: str) -> list[CredentialOut]:
    """The workspace's credentials and your personal ones in it."""
    membership = api_membership(request, ws)
    credentials = selectors.credentials_usable_by(api_user(request), membership.workspace)
    return [_out(request, c) for c in credentials.select_related("owner")]


@router.post("/workspaces/{ws}/credentials", response={201: CredentialOut})
def create_credential(
    request: HttpRequest, ws: str, payload: CredentialIn
) -> tuple[int, CredentialOut]:
    membership = api_membership(request, ws, min_role=Role.MEMBER)
    credential = services.credential_create(
        workspace=membership.workspace,
        user=api_user(request),
        provider=payload.provider,
        label=payload.label,
        scope=Scope(payload.scope),
        keys=_secrets(payload.keys),
        base_url=payload.base_url,
    )
    return 201, _out(request, credential)


@router.get("/workspaces/{ws}/credentials/{credential_id}", response=CredentialOut)
def read_credential(request: HttpRequest, ws: str, credential_id: int) -> CredentialOut:
    return _out(request, _get(request, ws, credential_id, Role.VIEWER))


@router.patch("/workspaces/{ws}/credentials/{credential_id}", response=CredentialOut)
def update_credential(
    request: HttpRequest, ws: str, credential_id: int, payload: CredentialPatch
) -> CredentialOut:
    """Change the label or base URL; replace, add or remove keys."""
    credential = _get(request, ws, credential_id, Role.MEMBER)
    services.credential_update(
        credential=credential,
        user=api_user(request),
        label=payload.label,
        base_url=payload.base_url,
        replace_keys=_secrets(payload.keys) if payload.keys is not None else None,
        add_keys=_secrets(payload.add_keys),
        remove_key_ids=payload.remove_key_ids,
    )
    return _out(request, credential)


@router.delete("/workspaces/{ws}/credentials/{credential_id}", response={204: None})
def delete_credential(request: HttpRequest, ws: str, credential_id: int) -> tuple[int, None]:
    credential = _get(request, ws, credential_id, Role.MEMBER)
    services.credential_delete(credential=credential, user=api_user(request))
    return 204, None


@router.post("/workspaces/{ws}/credentials/{credential_id}/test", response=CheckOut)
def test_credential(request: HttpRequest, ws: str, credential_id: int) -> CheckOut:
    """List the provider's models with every key; refreshes the catalog when one works."""
    credential = _get(request, ws, credential_id, Role.MEMBER)
    result = services.credential_check(credential=credential, user=api_user(request))
    return CheckOut(
        ok=result.ok,
        message=result.message,
        keys=[KeyCheckOut(key=p.key_label, ok=p.ok, error=p.error) for p in result.probes],
        models=list(result.models),
    )


@router.get("/workspaces/{ws}/credentials/{credential_id}/models", response=list[CatalogEntryOut])
def list_models(request: HttpRequest, ws: str, credential_id: int) -> list[CatalogEntryOut]:
    """The credential's model catalog, with prices (``unpriced`` when there is none)."""
    credential = _get(request, ws, credential_id, Role.VIEWER)
    prices = selectors.price_table()
    return [_catalog_out(entry, prices) for entry in selectors.catalog_entries(credential)]


@router.post("/workspaces/{ws}/credentials/{credential_id}/models", response={201: CatalogEntryOut})
def add_model(
    request: HttpRequest, ws: str, credential_id: int, payload: ModelIn
) -> tuple[int, CatalogEntryOut]:
    """Add a model by hand, for servers that do not list theirs."""
    credential = _get(request, ws, credential_id, Role.MEMBER)
    entry = services.catalog_add_model(
        credential=credential, user=api_user(request), model_id=payload.model
    )
    return 201, _catalog_out(entry, selectors.price_table())
