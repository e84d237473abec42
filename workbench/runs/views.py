"""Pages of runs: start one, watch it live, look through history.

Thin: parse, check access (``workspace_view``), call a service or selector, render. Viewers
read; members and up start, cancel and rerun.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from workbench.accounts.access import workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.curation.blind import blind_run_context
from workbench.lib.errors import ServiceError
from workbench.lib.markdown import render_markdown
from workbench.pools.estimate import PoolEstimate
from workbench.runs import services
from workbench.runs.display import part_text, run_state_now, run_view
from workbench.runs.forms import SOURCE_ADHOC, NewRunForm, RunFilterForm
from workbench.runs.history import PAGE_SIZE, runs_filtered
from workbench.runs.launch import adhoc_config, config_estimate, pool_config
from workbench.runs.models import Run, RunSource
from workbench.runs.selectors import run_in_workspace

# --- starting a run -----------------------------------------------------------------------------


def _config_from(form: NewRunForm, request: HttpRequest) -> tuple[dict[str, Any], Any]:
    """The frozen configuration the form describes, and its pool (None when ad hoc)."""
    if form.source_value == SOURCE_ADHOC:
        config = adhoc_config(
            user=request.user,  # type: ignore[arg-type]
            workspace=form.workspace,
            members=form.adhoc_members(),
            mode=form.adhoc_mode(),
            rounds=form.adhoc_rounds(),
            judge=form.adhoc_judge(),
        )
        return config, None
    pool = form.chosen_pool()
    if pool is None:
        raise ServiceError("Choose a pool, or pick models.", field="pool")
    return pool_config(pool, request.user), pool  # type: ignore[arg-type]


def _estimate_of(form: NewRunForm, request: HttpRequest) -> tuple[PoolEstimate | None, str]:
    """The estimate for what the form describes now, or why there is none yet."""
    if (form.source_value == SOURCE_ADHOC and not form.adhoc_members()) or (
        form.source_value != SOURCE_ADHOC and form.chosen_pool() is None
    ):
        return None, ""  # nothing chosen yet: the panel says what to do, not what is wrong
    try:
        config, _pool = _config_from(form, request)
    except ServiceError as err:
        return None, err.message
    estimate = config_estimate(
        config, prompt=form.prompt_text(), system_prompt=form.system_prompt_text()
    )
    return estimate, ""


@workspace_view(min_role=Role.MEMBER)
def run_new(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    initial: dict[str, Any] = {}
    if request.method != "POST":
        wanted = request.GET.get("pool", "")
        initial = {"pool": wanted, "prompt": request.GET.get("prompt", "")}
    form = NewRunForm(
        request.POST if request.method == "POST" else None,
        initial=initial,
        workspace=workspace,
        user=request.user,  # type: ignore[arg-type]
    )
    if request.method != "POST" and initial["pool"] and form.chosen_pool() is None:
        # ?pool=<slug> from a pool's page.
        match = next((p for p in form.pools if p.slug == initial["pool"]), None)
        form.initial["pool"] = str(match.pk) if match else ""
    if request.method == "POST" and form.is_valid():
        try:
            prompt, system_prompt = services.prompt_validate(
                form.prompt_text(), form.system_prompt_text()
            )
            config, pool = _config_from(form, request)
            estimate = config_estimate(config, prompt=prompt, system_prompt=system_prompt)
            run = services.run_create(
                workspace=workspace,
                user=request.user,  # type: ignore[arg-type]
                config=config,
                prompt=prompt,
                system_prompt=system_prompt,
                pool=pool,
                source=RunSource.WEB,
                estimated_cost=estimate.priced_usd,
            )
        except ServiceError as err:
            form.add_service_error(err)
        else:
            return redirect("runs:detail", ws=workspace.slug, run_id=run.pk)
    estimate, estimate_problem = _estimate_of(form, request)
    return render(
        request,
        "runs/new.html",
        {
            "form": form,
            "estimate": estimate,
            "estimate_problem": estimate_problem,
            "is_adhoc": form.source_value == SOURCE_ADHOC,
        },
    )


@workspace_view(min_role=Role.MEMBER)
@require_POST
def run_estimate(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """The estimate panel of the new-run page, refreshed by htmx as the choice changes."""
    form = NewRunForm(request.POST, workspace=workspace, user=request.user)  # type: ignore[arg-type]
    estimate, problem = _estimate_of(form, request)
    return render(
        request,
        "runs/partials/estimate.html",
        {"estimate": estimate, "estimate_problem": problem},
    )


# --- one run ------------------------------------------------------------------------------------


def _run(workspace: Workspace, run_id: uuid.UUID) -> Run:
    return run_in_workspace(workspace, run_id)


def _run_context(request: HttpRequest, run: Run) -> dict[str, Any]:
    seq, state = run_state_now(run)
    view = run_view(run, state)
    workspace = run.workspace
    live = {
        "run": str(run.pk),
        "seq": seq,
        "terminal": view.is_terminal,
        "socket": f"/ws/runs/{run.pk}/",
        "partUrl": reverse("runs:part_html", kwargs={"ws": workspace.slug, "run_id": run.pk}),
        "panelsUrl": reverse("runs:panels", kwargs={"ws": workspace.slug, "run_id": run.pk}),
        "providers": view.providers,
        "labels": (run.config or {}).get("labels") or {},
        "mode": view.mode,
    }
    context = {
        "run": run,
        "view": view,
        "live": live,
        "can_edit": request.membership.can_edit,  # type: ignore[attr-defined]
        "labels": live["labels"],
    }
    # Blind mode (curation): this person's order, and no model names until they have judged.
    blind_run_context(context, run, request.user)  # type: ignore[arg-type]
    return context


@workspace_view(min_role=Role.VIEWER)
@require_GET
def run_detail(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = _run(workspace, run_id)
    return render(request, "runs/detail.html", _run_context(request, run))


@workspace_view(min_role=Role.VIEWER)
@require_GET
@never_cache
def run_panels(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    """The run page's server-rendered panels (status, verdict, calls), for the live page to
    swap in when a structural event arrives; the streaming text is the script's own."""
    run = _run(workspace, run_id)
    return render(request, "runs/partials/panels.html", _run_context(request, run))


@workspace_view(min_role=Role.VIEWER)
@require_GET
@never_cache
def run_part_html(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    """One part's text (``?key=m1/0`` or ``judge/synthesis``) as sanitised HTML."""
    run = _run(workspace, run_id)
    _seq, state = run_state_now(run)
    found = part_text(state, request.GET.get("key", ""))
    if found is None:
        raise Http404
    status, text = found
    response = HttpResponse(render_markdown(text), content_type="text/html; charset=utf-8")
    response["X-Part-Status"] = status
    return response


@workspace_view(min_role=Role.MEMBER)
@require_POST
def run_cancel(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = _run(workspace, run_id)
    try:
        run = services.run_cancel(run=run, user=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
    else:
        messages.info(request, "Cancelling the run; finished answers are kept.")
    if request.htmx:  # type: ignore[attr-defined]
        run.refresh_from_db()
        context = _run_context(request, run)
        context["oob_toasts"] = True
        return render(request, "runs/partials/panels.html", context)
    return redirect("runs:detail", ws=workspace.slug, run_id=run.pk)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def run_rerun(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = _run(workspace, run_id)
    try:
        new = services.run_rerun(run=run, user=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        return redirect("runs:detail", ws=workspace.slug, run_id=run.pk)
    return redirect("runs:detail", ws=workspace.slug, run_id=new.pk)


# --- history --------------------------------------------------------------------------------------


@workspace_view(min_role=Role.VIEWER)
@require_GET
def run_list(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    form = RunFilterForm(request.GET or None, workspace=workspace)
    filters = form.filters()
    page = Paginator(runs_filtered(workspace, filters), PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(
        request,
        "runs/list.html",
        {
            "form": form,
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "can_edit": request.membership.can_edit,  # type: ignore[attr-defined]
        },
    )
