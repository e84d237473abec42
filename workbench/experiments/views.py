"""Pages of experiments and datasets.

Thin: parse, check access (``workspace_view``), call a service or selector, render. Viewers
read everything; members and up upload, start, pause, resume, cancel and delete.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.text import slugify
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from workbench.accounts.access import workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.experiments import selectors, services
from workbench.experiments.arms import ExperimentEstimate, experiment_estimate
from workbench.experiments.checkers import CHECKER_LABELS
from workbench.experiments.datasets import MAX_FILE_BYTES, DatasetFileError
from workbench.experiments.forms import DatasetUploadForm, GradeForm, NewExperimentForm
from workbench.experiments.models import Experiment
from workbench.experiments.results import (
    accuracy_cost_svg,
    experiment_results,
    results_csv,
    results_json,
)
from workbench.lib.errors import ServiceError


def _can_edit(request: HttpRequest) -> bool:
    return bool(request.membership.can_edit)  # type: ignore[attr-defined]


# --- the index ----------------------------------------------------------------------------------


@workspace_view(min_role=Role.VIEWER)
@require_GET
def experiment_list(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    return render(
        request,
        "experiments/index.html",
        {
            "experiments": selectors.experiments_of(workspace)[:100],
            "datasets": selectors.datasets_of(workspace)[:100],
            "gold_checkers": [(c, CHECKER_LABELS[c]) for c in services.GOLD_CHECKERS],
            "can_edit": _can_edit(request),
        },
    )


# --- datasets -----------------------------------------------------------------------------------


@workspace_view(min_role=Role.MEMBER)
@require_http_methods(["GET", "POST"])
def dataset_upload(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    form = DatasetUploadForm(request.POST or None, request.FILES or None)
    problems: list[str] = []
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            # One byte past the limit is enough to say "too big" without reading it all.
            data = upload.read(MAX_FILE_BYTES + 1)
            dataset = services.dataset_import(
                workspace=workspace,
                user=request.user,  # type: ignore[arg-type]
                name=form.cleaned_data["name"],
                filename=upload.name or "",
                data=data,
            )
        except DatasetFileError as err:
            problems = err.lines
        except ServiceError as err:
            form.add_error(None, err.message)
        else:
            messages.success(request, f"Imported {dataset.item_count} items into {dataset.name}.")
            return redirect("experiments:dataset_detail", ws=workspace.slug, dataset_id=dataset.pk)
    return render(
        request,
        "experiments/dataset_upload.html",
        {"form": form, "problems": problems, "checkers": CHECKER_LABELS},
        status=400 if problems else 200,
    )


@workspace_view(min_role=Role.MEMBER)
@require_POST
def dataset_sample(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    dataset = services.dataset_install_sample(workspace=workspace, user=request.user)  # type: ignore[arg-type]
    messages.success(request, f"{dataset.name} is ready: {dataset.item_count} items.")
    return redirect("experiments:dataset_detail", ws=workspace.slug, dataset_id=dataset.pk)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def dataset_gold(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """A dataset from the gold answers people gave on run pages (curation)."""
    try:
        dataset, left_out = services.dataset_from_gold(
            workspace=workspace,
            user=request.user,  # type: ignore[arg-type]
            checker=request.POST.get("checker", ""),
        )
    except ServiceError as err:
        messages.error(request, err.message)
        return redirect("experiments:index", ws=workspace.slug)
    note = f" ({left_out} gold answers did not suit the checker)" if left_out else ""
    messages.success(request, f"{dataset.name}: {dataset.item_count} items{note}.")
    return redirect("experiments:dataset_detail", ws=workspace.slug, dataset_id=dataset.pk)


@workspace_view(min_role=Role.VIEWER)
@require_GET
def dataset_detail(request: HttpRequest, workspace: Workspace, dataset_id: int) -> HttpResponse:
    dataset = selectors.dataset_get(workspace, dataset_id)
    return render(
        request,
        "experiments/dataset_detail.html",
        {
            "dataset": dataset,
            "items": selectors.items_of(dataset),
            "checkers": CHECKER_LABELS,
            "can_edit": _can_edit(request),
        },
    )


@workspace_view(min_role=Role.MEMBER)
@require_POST
def dataset_delete(request: HttpRequest, workspace: Workspace, dataset_id: int) -> HttpResponse:
    dataset = selectors.dataset_get(workspace, dataset_id)
    try:
        services.dataset_delete(dataset=dataset, user=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        return redirect("experiments:dataset_detail", ws=workspace.slug, dataset_id=dataset.pk)
    messages.success(request, f"Deleted {dataset.name}.")
    return redirect("experiments:index", ws=workspace.slug)


# --- starting an experiment ---------------------------------------------------------------------


@workspace_view(min_role=Role.MEMBER)
@require_http_methods(["GET", "POST"])
def experiment_new(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """First the estimate, then the start: the page shows what the experiment may cost before
    the button that spends it appears, and the start posts back that estimate's token."""
    user = request.user
    initial = {"dataset": request.GET.get("dataset", "")}
    form = NewExperimentForm(
        request.POST or None,
        initial=initial,
        workspace=workspace,
        user=user,  # type: ignore[arg-type]
    )
    estimate: ExperimentEstimate | None = None
    if request.method == "POST" and form.is_valid():
        try:
            dataset = form.chosen_dataset()
            if dataset is None:
                raise ServiceError("Choose a dataset.", field="dataset")
            choice, grader = form.choice(), form.grader_choice()
            if request.POST.get("action") == "start":
                try:
                    experiment = services.experiment_create(
                        workspace=workspace,
                        user=user,  # type: ignore[arg-type]
                        dataset=dataset,
                        choice=choice,
                        grader=grader,
                        estimate_token=form.cleaned_data["estimate_token"] or "",
                        name=form.cleaned_data["name"],
                        concurrency=form.cleaned_data["concurrency"],
                        budget_usd=form.cleaned_data["budget_usd"],
                    )
                except ServiceError as err:
                    if err.code not in ("estimate_required", "estimate_stale"):
                        raise
                    form.add_service_error(err)  # and show the estimate as it is now
                else:
                    return redirect(
                        "experiments:detail", ws=workspace.slug, experiment_id=experiment.pk
                    )
            estimate = experiment_estimate(
                user=user,  # type: ignore[arg-type]
                workspace=workspace,
                dataset=dataset,
                choice=choice,
                grader=grader,
            )
        except ServiceError as err:
            form.add_service_error(err)
    budget = form.cleaned_data.get("budget_usd") if form.is_bound and form.is_valid() else None
    return render(
        request,
        "experiments/new.html",
        {
            "form": form,
            "pool_rows": form.pool_rows(),
            "estimate": estimate,
            "over_budget": estimate is not None and budget is not None and estimate.total > budget,
        },
    )


# --- one experiment -----------------------------------------------------------------------------


def _context(request: HttpRequest, experiment: Experiment) -> dict[str, Any]:
    results = experiment_results(experiment)
    return {
        "experiment": experiment,
        "progress": selectors.experiment_progress(experiment),
        "results": results,
        "chart": accuracy_cost_svg(results.arms),
        "can_edit": _can_edit(request),
    }


@workspace_view(min_role=Role.VIEWER)
@require_GET
def experiment_detail(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    experiment = selectors.experiment_get(workspace, experiment_id)
    return render(request, "experiments/detail.html", _context(request, experiment))


@workspace_view(min_role=Role.VIEWER)
@require_GET
@never_cache
def experiment_live(request: HttpRequest, workspace: Workspace, experiment_id: int) -> HttpResponse:
    """Progress and results, for htmx to swap in every 2 s while the experiment runs."""
    experiment = selectors.experiment_get(workspace, experiment_id)
    return render(request, "experiments/partials/live.html", _context(request, experiment))


def _transition(
    request: HttpRequest, workspace: Workspace, experiment_id: int, action: str
) -> HttpResponse:
    experiment = selectors.experiment_get(workspace, experiment_id)
    service = {
        "pause": services.experiment_pause,
        "resume": services.experiment_resume,
        "cancel": services.experiment_cancel,
    }[action]
    try:
        service(experiment=experiment, user=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
    else:
        done = {"pause": "Paused", "resume": "Resumed", "cancel": "Cancelled"}[action]
        messages.success(request, f"{done} {experiment.name}.")
    return redirect("experiments:detail", ws=workspace.slug, experiment_id=experiment.pk)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def experiment_pause(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    return _transition(request, workspace, experiment_id, "pause")


@workspace_view(min_role=Role.MEMBER)
@require_POST
def experiment_resume(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    return _transition(request, workspace, experiment_id, "resume")


@workspace_view(min_role=Role.MEMBER)
@require_POST
def experiment_cancel(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    return _transition(request, workspace, experiment_id, "cancel")


@workspace_view(min_role=Role.MEMBER)
@require_POST
def experiment_delete(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    experiment = selectors.experiment_get(workspace, experiment_id)
    try:
        services.experiment_delete(experiment=experiment, user=request.user)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        return redirect("experiments:detail", ws=workspace.slug, experiment_id=experiment.pk)
    messages.success(request, f"Deleted {experiment.name}.")
    return redirect("experiments:index", ws=workspace.slug)


# --- people's grades ----------------------------------------------------------------------------


@workspace_view(min_role=Role.VIEWER)
@require_GET
def experiment_grading(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    """The answers that wait for a person's grade, blind (no arm shown), with the buttons."""
    experiment = selectors.experiment_get(workspace, experiment_id)
    waiting = list(selectors.awaiting_grading(experiment)[:200])
    return render(
        request,
        "experiments/grading.html",
        {
            "experiment": experiment,
            "waiting": waiting,
            "total": selectors.awaiting_grading(experiment).count(),
            "can_edit": _can_edit(request),
            "next": request.get_full_path(),
        },
    )


@workspace_view(min_role=Role.MEMBER)
@require_POST
def item_grade(
    request: HttpRequest, workspace: Workspace, experiment_id: int, result_id: int
) -> HttpResponse:
    experiment = selectors.experiment_get(workspace, experiment_id)
    result = selectors.result_get(experiment, result_id)
    form = GradeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose correct or incorrect.")
    else:
        try:
            services.item_grade(
                result=result,
                user=request.user,  # type: ignore[arg-type]
                correct=form.cleaned_data["correct"],
                note=form.cleaned_data["note"],
            )
        except ServiceError as err:
            messages.error(request, err.message)
        else:
            verdict = "correct" if form.cleaned_data["correct"] else "incorrect"
            messages.success(request, f"Item {result.item.position + 1} graded {verdict}.")
    fallback = reverse(
        "experiments:grading", kwargs={"ws": workspace.slug, "experiment_id": experiment.pk}
    )
    target = request.POST.get("next", "")
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(target if target and safe else fallback)


def _filename(experiment: Experiment, ext: str) -> str:
    return f"experiment-{experiment.pk}-{slugify(experiment.name)[:40] or 'results'}.{ext}"


@workspace_view(min_role=Role.VIEWER)
@require_GET
def experiment_export_csv(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    experiment = selectors.experiment_get(workspace, experiment_id)
    response = HttpResponse(results_csv(experiment), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_filename(experiment, "csv")}"'
    return response


@workspace_view(min_role=Role.VIEWER)
@require_GET
def experiment_export_json(
    request: HttpRequest, workspace: Workspace, experiment_id: int
) -> HttpResponse:
    experiment = selectors.experiment_get(workspace, experiment_id)
    response = JsonResponse(results_json(experiment), json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'attachment; filename="{_filename(experiment, "json")}"'
    return response
