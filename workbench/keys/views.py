"""Pages of provider credentials: list and add, manage one, test, and its model catalog."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from workbench.accounts.access import require_role, workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.keys import access, selectors, services
from workbench.keys.forms import (
    CredentialCreateForm,
    CredentialEditForm,
    ModelAddForm,
    provider_hints,
)
from workbench.keys.models import Credential
from workbench.lib.errors import ServiceError
from workbench.pools.selectors import pools_using_credential

SECRET_FIELDS = ("keys", "add_keys")


def _rows(request: HttpRequest, workspace: Workspace) -> list[dict[str, Any]]:
    credentials = selectors.credentials_usable_by(request.user, workspace)  # type: ignore[arg-type]
    counts = selectors.catalogs_for(request.user, workspace)  # type: ignore[arg-type]
    role = request.membership  # type: ignore[attr-defined]
    return [
        {
            "c": c,
            "model_count": len(counts.get(c.pk, [])),
            "can_manage": access.can_manage(request.user, c, role),  # type: ignore[arg-type]
            "can_use": role.has_role(Role.MEMBER),
        }
        for c in credentials
    ]


@sensitive_post_parameters(*SECRET_FIELDS)
@workspace_view(min_role=Role.VIEWER)
def credential_index(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    role = request.membership  # type: ignore[attr-defined]
    form = CredentialCreateForm(request.POST or None, can_share=role.has_role(Role.ADMIN))
    if request.method == "POST":
        require_role(request, Role.MEMBER)
        if form.is_valid():
            try:
                credential = services.credential_create(
                    workspace=workspace,
                    user=request.user,  # type: ignore[arg-type]
                    provider=form.cleaned_data["provider"],
                    label=form.cleaned_data["label"],
                    scope=form.cleaned_data["scope"],
                    keys=form.key_lines(),
                    base_url=form.cleaned_data["base_url"],
                )
            except ServiceError as err:
                form.add_service_error(err)
            else:
                ready = credential.kind.protocol == "simulated"
                messages.success(
                    request,
                    f"Saved {credential.label}."
                    + ("" if ready else " Test it to check the keys and fetch its models."),
                )
                return redirect("keys:detail", ws=workspace.slug, pk=credential.pk)
    context = {
        "rows": _rows(request, workspace),
        "form": form,
        "can_add": role.has_role(Role.MEMBER),
        "provider_hints": provider_hints(),
    }
    return render(request, "keys/index.html", context)


def _detail_context(
    request: HttpRequest, credential: Credential, form: CredentialEditForm | None = None
) -> dict[str, Any]:
    prices = selectors.price_table()
    role = request.membership  # type: ignore[attr-defined]
    can_manage = access.can_manage(request.user, credential, role)  # type: ignore[arg-type]
    return {
        "credential": credential,
        "can_manage": can_manage,
        "can_use": access.can_use(request.user, credential, role),  # type: ignore[arg-type]
        "form": form or (CredentialEditForm(credential=credential) if can_manage else None),
        "model_form": ModelAddForm(),
        "catalog": [
            {"entry": entry, "price": selectors.model_price(entry.model_id, prices)}
            for entry in selectors.catalog_entries(credential)
        ],
        "pools": pools_using_credential(credential),
    }


@sensitive_post_parameters(*SECRET_FIELDS)
@workspace_view(min_role=Role.VIEWER)
def credential_detail(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    credential = selectors.credential_get(request.user, workspace, pk)  # type: ignore[arg-type]
    form = None
    if request.method == "POST":
        access.ensure_can_manage(request.user, credential)  # type: ignore[arg-type]
        form = CredentialEditForm(request.POST, credential=credential)
        if form.is_valid():
            try:
                services.credential_update(
                    credential=credential,
                    user=request.user,  # type: ignore[arg-type]
                    label=form.cleaned_data["label"],
                    base_url=form.cleaned_data.get("base_url"),
                    add_keys=form.cleaned_data.get("add_keys", "").splitlines(),
                    remove_key_ids=form.cleaned_data.get("remove_keys") or [],
                )
            except ServiceError as err:
                form.add_service_error(err)
                credential.refresh_from_db()
            else:
                messages.success(request, "Saved.")
                return redirect("keys:detail", ws=workspace.slug, pk=credential.pk)
    return render(request, "keys/detail.html", _detail_context(request, credential, form))


@require_POST
@workspace_view(min_role=Role.MEMBER)
def credential_test(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    credential = selectors.credential_get(request.user, workspace, pk)  # type: ignore[arg-type]
    result = services.credential_check(credential=credential, user=request.user)  # type: ignore[arg-type]
    if request.htmx:  # type: ignore[attr-defined]
        return render(
            request, "keys/partials/check_result.html", {"credential": credential, "result": result}
        )
    (messages.success if result.ok else messages.error)(request, result.message)
    return redirect("keys:detail", ws=workspace.slug, pk=credential.pk)


def _catalog_response(
    request: HttpRequest, workspace: Workspace, credential: Credential, **extra: Any
) -> HttpResponse:
    if request.htmx:  # type: ignore[attr-defined]
        context = _detail_context(request, credential) | extra
        return render(request, "keys/partials/catalog.html", context)
    return redirect("keys:detail", ws=workspace.slug, pk=credential.pk)


@require_POST
@workspace_view(min_role=Role.MEMBER)
def catalog_refresh(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    credential = selectors.credential_get(request.user, workspace, pk)  # type: ignore[arg-type]
    result = services.credential_check(credential=credential, user=request.user)  # type: ignore[arg-type]
    if not request.htmx:  # type: ignore[attr-defined]
        (messages.success if result.ok else messages.error)(request, result.message)
    return _catalog_response(request, workspace, credential, refresh_result=result)


@require_POST
@workspace_view(min_role=Role.MEMBER)
def catalog_add(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    credential = selectors.credential_get(request.user, workspace, pk)  # type: ignore[arg-type]
    form = ModelAddForm(request.POST)
    error = None
    if form.is_valid():
        try:
            services.catalog_add_model(
                credential=credential,
                user=request.user,  # type: ignore[arg-type]
                model_id=form.cleaned_data["model"],
            )
        except ServiceError as err:
            error = err.message
    else:
        error = "Enter a model id."
    if error and not request.htmx:  # type: ignore[attr-defined]
        messages.error(request, error)
    return _catalog_response(request, workspace, credential, model_error=error)


@require_POST
@workspace_view(min_role=Role.MEMBER)
def catalog_remove(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    credential = selectors.credential_get(request.user, workspace, pk)  # type: ignore[arg-type]
    services.catalog_remove_model(
        credential=credential,
        user=request.user,  # type: ignore[arg-type]
        model_id=request.POST.get("model", ""),
    )
    return _catalog_response(request, workspace, credential)


@require_POST
@workspace_view(min_role=Role.MEMBER)
def credential_delete(request: HttpRequest, workspace: Workspace, pk: int) -> HttpResponse:
    credential = selectors.credential_get(request.user, workspace, pk)  # type: ignore[arg-type]
    label = credential.label
    services.credential_delete(credential=credential, user=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Deleted {label}.")
    return redirect("keys:index", ws=workspace.slug)
