"""Writes about credentials: create, change, delete, test, catalog, and the worker's decryption.

Raw keys exist in clear only inside these functions (on their way into ``encrypt``) and inside
``credential_endpoint`` in the worker. Nothing here logs, returns or echoes them; errors name a
key by its position or its last four characters.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import httpx
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from fusion.providers.base import Endpoint, Timeouts
from fusion.providers.registry import PROVIDER_KINDS, build_provider
from fusion.providers.transport import HttpClient
from fusion.types import ApiKey
from workbench.accounts.models import User, Workspace
from workbench.keys import access
from workbench.keys.models import (
    CatalogModel,
    Credential,
    CredentialKey,
    ModelSource,
    Scope,
)
from workbench.keys.probe import KeyProbe, Target, probe_models
from workbench.keys.ssrf import check_base_url
from workbench.lib.crypto import decrypt, encrypt, rotate
from workbench.lib.errors import ServiceError

MAX_KEYS = 16
MIN_KEY_CHARS = 8
MAX_KEY_CHARS = 500
MAX_CATALOG = 2000
MAX_MODEL_ID = 200


# --- validation ---------------------------------------------------------------------------------


@sensitive_variables("raw", "keys", "key")
def clean_keys(raw: Iterable[str]) -> list[str]:
    """Stripped, de-duplicated keys; blank entries dropped. Errors never quote a key."""
    keys: list[str] = []
    for position, key in enumerate((k.strip() for k in raw), start=1):
        if not key:
            continue
        if len(key) < MIN_KEY_CHARS:
            raise ServiceError(
                f"Key #{position} is too short to be an API key.", field="keys", code="key"
            )
        if (
            len(key) > MAX_KEY_CHARS
            or not key.isascii()
            or not key.isprintable()
            or any(c.isspace() for c in key)
        ):
            raise ServiceError(
                f"Key #{position} has characters an API key cannot have (spaces or non-ASCII).",
                field="keys",
                code="key",
            )
        if key not in keys:
            keys.append(key)
    return keys


def _clean_label(label: str) -> str:
    label = " ".join(label.split())
    if not label:
        raise ServiceError("Give the credential a label.", field="label", code="required")
    if len(label) > 80:
        raise ServiceError("Keep the label under 80 characters.", field="label")
    return label


def _clean_base_url(provider: str, base_url: str) -> str:
    spec = PROVIDER_KINDS[provider]
    base_url = base_url.strip().rstrip("/")
    if spec.protocol == "simulated":
        if base_url:
            raise ServiceError("Simulated credentials have no base URL.", field="base_url")
        return ""
    if not base_url:
        if spec.needs_base_url:
            raise ServiceError(
                "This provider needs a base URL, e.g. http://localhost:11434/v1.",
                field="base_url",
                code="required",
            )
        return ""
    if len(base_url) > 500:
        raise ServiceError("The base URL is too long.", field="base_url")
    check_base_url(base_url)
    return base_url


def _check_label_free(
    workspace: Workspace, label: str, scope: str, owner: User | None, exclude: int | None
) -> None:
    clash = Credential.objects.filter(workspace=workspace, scope=scope, label__iexact=label)
    if scope == Scope.PERSONAL:
        clash = clash.filter(owner=owner)
    if exclude is not None:
        clash = clash.exclude(pk=exclude)
    if clash.exists():
        raise ServiceError(
            f"There is already a {scope} credential labelled {label!r}.",
            field="label",
            code="duplicate",
        )


@sensitive_variables("keys", "key")
def _add_keys(credential: Credential, keys: Sequence[str]) -> None:
    start = (
        credential.keys.order_by("-position").values_list("position", flat=True).first() or 0
    ) + 1
    CredentialKey.objects.bulk_create(
        CredentialKey(
            credential=credential, ciphertext=encrypt(key), hint=key[-4:], position=start + i
        )
        for i, key in enumerate(keys)
    )


def _require_keys(credential: Credential) -> None:
    count = credential.keys.count()
    if credential.kind.needs_key and count == 0:
        raise ServiceError(
            f"{credential.kind.label} needs at least one API key.", field="keys", code="required"
        )
    if count > MAX_KEYS:
        raise ServiceError(f"A credential holds at most {MAX_KEYS} keys.", field="keys")


# --- credentials --------------------------------------------------------------------------------


@sensitive_variables("keys")
@transaction.atomic
def credential_create(
    *,
    workspace: Workspace,
    user: User,
    provider: str,
    label: str,
    scope: str = Scope.PERSONAL,
    keys: Iterable[str] = (),
    base_url: str = "",
) -> Credential:
    if provider not in PROVIDER_KINDS:
        raise ServiceError("Choose a provider.", field="provider", code="invalid_choice")
    if scope not in Scope.values:
        raise ServiceError("Choose personal or workspace.", field="scope", code="invalid_choice")
    access.ensure_can_create(user, workspace, scope)
    label = _clean_label(label)
    cleaned = clean_keys(keys)
    base_url = _clean_base_url(provider, base_url)
    owner = user if scope == Scope.PERSONAL else None
    _check_label_free(workspace, label, scope, owner, exclude=None)
    credential = Credential.objects.create(
        workspace=workspace,
        scope=scope,
        owner=owner,
        provider=provider,
        label=label,
        base_url=base_url,
        created_by=user,
    )
    _add_keys(credential, cleaned)
    _require_keys(credential)
    if credential.kind.protocol == "simulated":
        # Offline and instant: fill the catalog now so the credential is ready for a pool.
        from fusion.providers.simulated import PRESETS

        catalog_replace_listed(credential, list(PRESETS))
    return credential


@sensitive_variables("add_keys", "replace_keys")
@transaction.atomic
def credential_update(
    *,
    credential: Credential,
    user: User,
    label: str | None = None,
    base_url: str | None = None,
    add_keys: Iterable[str] = (),
    remove_key_ids: Iterable[int] = (),
    replace_keys: Iterable[str] | None = None,
) -> Credential:
    """Change the label, the base URL or the key pool (add, remove by id, or replace all)."""
    access.ensure_can_manage(user, credential)
    # Drop keys a selector may have prefetched: counts below must see this transaction's rows.
    credential.refresh_from_db()
    if label is not None:
        credential.label = _clean_label(label)
        _check_label_free(
            credential.workspace,
            credential.label,
            credential.scope,
            credential.owner,
            exclude=credential.pk,
        )
    # Resolved and checked only when it changes: renaming must not depend on DNS. Every call
    # is checked again at connect time anyway.
    if base_url is not None and base_url.strip().rstrip("/") != credential.base_url:
        credential.base_url = _clean_base_url(credential.provider, base_url)
    if replace_keys is not None:
        cleaned = clean_keys(replace_keys)
        credential.keys.all().delete()
        _add_keys(credential, cleaned)
    remove = set(remove_key_ids)
    if remove:
        unknown = remove - set(credential.keys.values_list("pk", flat=True))
        if unknown:
            raise ServiceError("That key is not part of this credential.", field="keys")
        credential.keys.filter(pk__in=remove).delete()
    added = clean_keys(add_keys)
    existing = {decrypt(k.ciphertext) for k in credential.keys.all()} if added else set()
    _add_keys(credential, [k for k in added if k not in existing])
    _require_keys(credential)
    credential.save()
    credential.refresh_from_db()
    return credential


@transaction.atomic
def credential_delete(*, credential: Credential, user: User) -> None:
    """Delete it; pools that used it keep their members with the credential missing, and runs
    keep their frozen copy (label and provider), so history still reads right."""
    access.ensure_can_manage(user, credential)
    credential.delete()


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    probes: tuple[KeyProbe, ...]
    models: tuple[str, ...]
    message: str


def credential_check(*, credential: Credential, user: User) -> CheckResult:
    """The "Test" button: list the models with every key; store the result and the catalog.

    Not atomic on purpose: the provider calls take seconds and must not hold a database lock.
    """
    access.ensure_can_use(user, credential)
    probes = probe_models(_target(credential), _api_keys(credential))
    models = sorted({m for p in probes if p.ok for m in p.models})
    ok = all(p.ok for p in probes)
    if ok:
        message = f"OK: {len(models)} model{'s' if len(models) != 1 else ''} available."
    else:
        failed = [p for p in probes if not p.ok]
        message = "; ".join(
            (f"{p.key_label}: {p.error}" if len(probes) > 1 else (p.error or "failed"))
            for p in failed
        )
    with transaction.atomic():
        now = timezone.now()
        Credential.objects.filter(pk=credential.pk).update(
            checked_at=now, check_ok=ok, check_message=message[:1000]
        )
        if any(p.ok for p in probes):
            catalog_replace_listed(credential, models)
            Credential.objects.filter(pk=credential.pk).update(
                models_refreshed_at=now, models_error=""
            )
        else:
            Credential.objects.filter(pk=credential.pk).update(models_error=message[:1000])
    credential.refresh_from_db()
    return CheckResult(ok, tuple(probes), tuple(models), message)


def catalog_replace_listed(credential: Credential, models: Sequence[str]) -> None:
    wanted = list(dict.fromkeys(m for m in models if m and len(m) <= MAX_MODEL_ID))[:MAX_CATALOG]
    credential.catalog.filter(source=ModelSource.LISTED).exclude(model_id__in=wanted).delete()
    have = set(credential.catalog.values_list("model_id", flat=True))
    CatalogModel.objects.bulk_create(
        CatalogModel(credential=credential, model_id=m, source=ModelSource.LISTED)
        for m in wanted
        if m not in have
    )


def clean_model_id(model_id: str, *, field: str = "model") -> str:
    model_id = model_id.strip()
    if not model_id:
        raise ServiceError("Enter a model id.", field=field, code="required")
    if len(model_id) > MAX_MODEL_ID or any(c.isspace() for c in model_id):
        raise ServiceError(
            "A model id is one word of at most 200 characters, e.g. gpt-4o-mini.", field=field
        )
    return model_id


@transaction.atomic
def catalog_add_model(*, credential: Credential, user: User, model_id: str) -> CatalogModel:
    """Add a model by hand, for servers that do not list their models."""
    access.ensure_can_use(user, credential)
    model_id = clean_model_id(model_id)
    entry, _ = CatalogModel.objects.get_or_create(
        credential=credential, model_id=model_id, defaults={"source": ModelSource.MANUAL}
    )
    return entry


@transaction.atomic
def catalog_remove_model(*, credential: Credential, user: User, model_id: str) -> None:
    access.ensure_can_use(user, credential)
    credential.catalog.filter(model_id=model_id, source=ModelSource.MANUAL).delete()


# --- for the worker -----------------------------------------------------------------------------


def _api_keys(credential: Credential) -> list[ApiKey]:
    return [
        ApiKey(label=key.display, secret=decrypt(key.ciphertext))
        for key in credential.keys.all()  # prefetched in order, or ordered by Meta
    ]


def _target(credential: Credential) -> Target:
    return Target(credential.provider, credential.label, credential.base_url or None)


def credential_endpoint(
    credential: Credential,
    *,
    client: HttpClient | httpx.AsyncClient | None,
    timeouts: Timeouts | None = None,
) -> Endpoint:
    """The provider and decrypted key pool for a run. Call it ONLY in the worker, with the
    client from ``safe_provider_client`` (every provider call must pass the SSRF guard).

    Synchronous (it reads the keys from the database): call it before entering the event loop
    or through ``sync_to_async``. Key labels are "…" + the last four characters.
    """
    provider = build_provider(
        credential.provider,
        name=credential.label,
        base_url=credential.base_url or None,
        client=client,
        timeouts=timeouts,
    )
    return Endpoint(provider, tuple(_api_keys(credential)))


def credentials_reencrypt() -> int:
    """Re-encrypt every stored key with the newest of ``FUSION_ENCRYPTION_KEYS``; how many."""
    count = 0
    with transaction.atomic():
        for key in CredentialKey.objects.select_for_update().only("pk", "ciphertext"):
            key.ciphertext = rotate(key.ciphertext)
            key.save(update_fields=["ciphertext"])
            count += 1
    return count
