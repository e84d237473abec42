"""Pool pages: list, create (with presets), detail with the cost estimate, edit, clone, delete."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST, require_safe

from workbench.accounts.access import workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.keys.selectors import catalogs_for, credentials_usable_by, model_price, price_table
from workbench.lib.errors import ServiceError
from workbench.pools import presets, selectors, services
from workbench.pools.estimate import pool_estimate
from workbench.pools.forms import MemberFormSet, PoolForm, attach_errors, initial_of, pool_input
from workbench.pools.inputs import MAX_MEMBERS, PoolInput, PoolValidationError, describe_path
from workbench.pools.models import Pool


@workspace_view(min_role=Role.VIEWER)
@require_safe
def pool_index(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    pools = list(selectors.pools_for(request.user, workspace))  # type: ignore[arg-type]
    prices = price_table()
    rows = [{"pool": p, "estimate": pool_estimate(p, prices=prices)} for p in pools]
    can_edit = request.membership.has_role(Role.MEMBER)  # type: ignore[attr-defined]
    return render(request, "pools/index.html", {"rows": rows, "can_edit": can_edit})


def _editor(
    request: HttpRequest,
    workspace: Workspace,
    *,
    pool: Pool | None,
    initial: PoolInput | None,
) -> HttpResponse:
    """The create and edit page: GET shows it, POST saves or shows it again with errors."""
    user = request.user
    credentials = list(credentials_usable_by(user, workspace))  # type: ignore[arg-type]
    catalogs = catalogs_for(user, workspace)  # type: ignore[arg-type]
    kwargs = {"credentials": credentials}
    loose: list[str] = []
    if request.method == "POST":
        form = PoolForm(request.POST, **kwargs)
        formset = MemberFormSet(request.POST, prefix="members", form_kwargs=kwargs)
        if form.is_valid() and formset.is_valid():
            data = pool_input(form, formset)
            try:
                if pool is None:
                    saved = services.pool_create(workspace=workspace, user=user, data=data)  # type: ignore[arg-type]
                else:
                    saved = services.pool_update(pool=pool, user=user, data=data)  # type: ignore[arg-type]
            except PoolValidationError as err:
                loose = attach_errors(err.errors, form, formset)
            except ServiceError as err:
                loose = [err.message]
            else:
                messages.success(request, f"Saved {saved.name}.")
                return redirect("pools:detail", ws=workspace.slug, pool=saved.slug)
    else:
        form_initial, member_initial = initial_of(initial) if initial else ({}, [{}, {}])
        form = PoolForm(initial=form_initial, **kwargs)
        formset = MemberFormSet(initial=member_initial, prefix="members", form_kwargs=kwargs)
    context: dict[str, Any] = {
        "pool": pool,
        "form": form,
        "formset": formset,
        "loose_errors": loose,
        "credentials": credentials,
        "model_lists": [(c, catalogs.get(c.pk, [])) for c in credentials],
        "max_members": MAX_MEMBERS,
    }
    if pool is None:
        context |= _preset_context(request, workspace)
    return render(request, "pools/edit.html", context)


def _preset_context(request: HttpRequest, workspace: Workspace) -> dict[str, Any]:
    choices = presets.model_choices(request.user, workspace)  # type: ignore[arg-type]
    self_choice = presets.default_self_choice(choices)
    return {
        "presets": [presets.quality_preset(choices), presets.budget_preset(choices)],
        "self_choices": choices,
        "self_default": self_choice.key if self_choice else "",
        "self_max": presets.MAX_SELF_FUSION,
    }


def _preset_input(request: HttpRequest, workspace: Workspace) -> PoolInput | None:
    key = request.GET.get("preset")
    if not key:
        return None
    choices = presets.model_choices(request.user, workspace)  # type: ignore[arg-type]
    preset = None
    if key == "quality":
        preset = presets.quality_preset(choices)
    elif key == "budget":
        preset = presets.budget_preset(choices)
    elif key == "self":
        choice = presets.find_choice(choices, request.GET.get("model", ""))
        try:
            n = int(request.GET.get("n", "3"))
        except ValueError:
            n = 3
        if choice is not None:
            preset = presets.self_fusion_preset(choice, n)
    if preset is None or preset.data is None:
        messages.warning(request, "That preset needs models you do not have keys for yet.")
        return None
    return preset.data


@workspace_view(min_role=Role.MEMBER)
def pool_create(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    initial = _preset_input(request, workspace) if request.method == "GET" else None
    return _editor(request, workspace, pool=None, initial=initial)


@workspace_view(min_role=Role.VIEWER)
@require_safe
def pool_detail(request: HttpRequest, workspace: Workspace, pool: str) -> HttpResponse:
    found = selectors.pool_get(request.user, workspace, pool)  # type: ignore[arg-type]
    prices = price_table()
    members = list(found.members.all())
    labels = services.member_labels([m.model for m in members])
    problems = services.pool_problems(found, request.user)  # type: ignore[arg-type]
    membership = request.membership  # type: ignore[attr-defined]
    context = {
        "pool": found,
        "members": [
            {"m": m, "label": label, "price": model_price(m.model, prices)}
            for m, label in zip(members, labels, strict=True)
        ],
        "judge_price": model_price(found.judge_model, prices) if found.has_judge else None,
        "estimate": pool_estimate(found, prices=prices),
        "problems": [describe_path(path) + msg for path, msgs in problems.items() for msg in msgs],
        "can_edit": membership.has_role(Role.MEMBER),
        "can_delete": membership.has_role(Role.ADMIN)
        or (found.created_by_id == request.user.pk and membership.has_role(Role.MEMBER)),
    }
    return render(request, "pools/detail.html", context)


@workspace_view(min_role=Role.MEMBER)
def pool_edit(request: HttpRequest, workspace: Workspace, pool: str) -> HttpResponse:
    found = selectors.pool_get(request.user, workspace, pool)  # type: ignore[arg-type]
    return _editor(request, workspace, pool=found, initial=services.pool_input_of(found))


@require_POST
@workspace_view(min_role=Role.MEMBER)
def pool_clone(request: HttpRequest, workspace: Workspace, pool: str) -> HttpResponse:
    found = selectors.pool_get(request.user, workspace, pool)  # type: ignore[arg-type]
    copy = services.pool_clone(pool=found, user=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Cloned into {copy.name}. Edit it to make it your own.")
    return redirect("pools:edit", ws=workspace.slug, pool=copy.slug)


@require_POST
@workspace_view(min_role=Role.MEMBER)
def pool_delete(request: HttpRequest, workspace: Workspace, pool: str) -> HttpResponse:
    found = selectors.pool_get(request.user, workspace, pool)  # type: ignore[arg-type]
    name = found.name
    services.pool_delete(pool=found, user=request.user)  # type: ignore[arg-type]
    messages.success(request, f"Deleted {name}. Past runs keep their copy of it.")
    return redirect("pools:index", ws=workspace.slug)
