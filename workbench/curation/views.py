"""Pages and htmx fragments of curation: the panel on a run page, the share page, exports,
the review queue, the leaderboard and the judges' reliability.

Viewers read and comment; members and up judge, tag, flag, share and copy.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from workbench.accounts.access import workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.accounts.selectors import membership_for
from workbench.curation import analysis, exports, selectors, services
from workbench.curation.blind import names_hidden
from workbench.curation.charts import agreement_chart, leaderboard_chart
from workbench.curation.display import panel_context, share_context
from workbench.curation.forms import (
    CommentForm,
    ExportForm,
    ShareForm,
    judgment_input,
    pick_value,
)
from workbench.lib.errors import ServiceError
from workbench.runs.models import Run
from workbench.runs.selectors import run_in_workspace

# --- the panel on a run page ---------------------------------------------------------------------


def render_panel(request: HttpRequest, run: Run, **extra: Any) -> HttpResponse:
    context = panel_context(run, request.user, request.membership)  # type: ignore[arg-type,attr-defined]
    context["review"] = _in_review(request)
    context.update(extra)
    return render(request, "curation/partials/panel.html", context)


def _in_review(request: HttpRequest) -> bool:
    return (request.GET.get("review") or request.POST.get("review")) == "1"


def _after_write(request: HttpRequest, run: Run, **extra: Any) -> HttpResponse:
    """htmx gets the fresh panel; a plain form post goes back to the run page."""
    if request.htmx:  # type: ignore[attr-defined]
        return render_panel(request, run, oob_toasts=True, **extra)
    url = reverse("runs:detail", kwargs={"ws": run.workspace.slug, "run_id": run.pk})
    return redirect(f"{url}{'?review=1' if _in_review(request) else ''}#curation")


@workspace_view(min_role=Role.VIEWER)
@require_GET
@never_cache
def panel(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    return render_panel(request, run_in_workspace(workspace, run_id))


@workspace_view(min_role=Role.MEMBER)
@require_POST
def judgment_save(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    members = [c.member for c in selectors.final_candidates(run)]
    data = judgment_input(request.POST, members)
    data["choice"], data["winner"] = pick_value(request.POST)
    user = request.user
    was_hidden = names_hidden(run, user)  # type: ignore[arg-type]
    try:
        judgment = services.judgment_save(run=run, user=user, **data)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
    else:
        messages.success(
            request,
            "Your judgment is saved." if judgment.decided else "Saved. Pick an answer when ready.",
        )
        if was_hidden and judgment.decided and request.htmx:  # type: ignore[attr-defined]
            # The names hidden all over the run page come back: reload all of it (the toast
            # waits in the session for the reloaded page).
            response = HttpResponse(status=200)
            response["HX-Refresh"] = "true"
            return response
    return _after_write(request, run)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def tags_set(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    try:
        services.run_tags_set(run=run, user=request.user, names=request.POST.get("tags", ""))  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
    return _after_write(request, run)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def flag_set(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    flagged = request.POST.get("flagged") == "1"
    services.review_flag_set(run=run, user=request.user, flagged=flagged)  # type: ignore[arg-type]
    return _after_write(request, run)


@workspace_view(min_role=Role.VIEWER)
@require_POST
def comment_create(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    form = CommentForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Write something first.")
        return _after_write(request, run)
    parent_id = form.cleaned_data.get("parent")
    parent = selectors.comment_in_run(run, parent_id) if parent_id else None
    try:
        services.comment_create(
            run=run,
            user=request.user,  # type: ignore[arg-type]
            body=form.cleaned_data["body"],
            parent=parent,
        )
    except ServiceError as err:
        messages.error(request, err.message)
    return _after_write(request, run)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def share_create(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    form = ShareForm(request.POST)
    link = None
    if form.is_valid():
        try:
            link = services.share_link_create(
                run=run,
                user=request.user,  # type: ignore[arg-type]
                show_costs=form.cleaned_data["show_costs"],
                expires_in_days=form.expiry(),
            )
        except ServiceError as err:
            messages.error(request, err.message)
        else:
            messages.success(request, "Share link made: anyone with it can read this run.")
    return _after_write(request, run, new_link=link)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def share_revoke(
    request: HttpRequest, workspace: Workspace, run_id: uuid.UUID, link_id: int
) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    link = selectors.share_link_in_run(run, link_id)
    services.share_link_revoke(link=link, user=request.user)  # type: ignore[arg-type]
    messages.info(request, "The link no longer works.")
    return _after_write(request, run)


@workspace_view(min_role=Role.MEMBER)
@require_POST
def run_copy(request: HttpRequest, workspace: Workspace, run_id: uuid.UUID) -> HttpResponse:
    run = run_in_workspace(workspace, run_id)
    # The target is checked like any workspace page: outsiders 404, viewers there 403.
    target = membership_for(request.user, request.POST.get("workspace", ""))  # type: ignore[arg-type]
    if not target.has_role(Role.MEMBER):
        raise Http404
    try:
        copy = services.run_copy(run=run, user=request.user, target=target.workspace)  # type: ignore[arg-type]
    except ServiceError as err:
        messages.error(request, err.message)
        return _after_write(request, run)
    messages.success(request, f"Copied into {target.workspace.name}.")
    url = reverse("runs:detail", kwargs={"ws": target.workspace.slug, "run_id": copy.pk})
    if request.htmx:  # type: ignore[attr-defined]
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


# --- the shared page -----------------------------------------------------------------------------


@require_GET
@never_cache
def share_page(request: HttpRequest, token: str) -> HttpResponse:
    link = selectors.share_link_live(token)
    response = render(request, "curation/share.html", share_context(link.run, link.show_costs))
    # The token is the whole secret: keep it out of referrers and search engines.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# --- export --------------------------------------------------------------------------------------


@workspace_view(min_role=Role.VIEWER)
@require_GET
def export(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    form = ExportForm(request.GET or None, workspace=workspace)
    if request.GET.get("download") and form.is_valid():
        runs = exports.export_runs(workspace, form.filters())
        return exports.export_response(runs, form.cleaned_data["format"], workspace.slug)
    count = None
    if form.is_bound and form.is_valid():
        count = exports.export_runs(workspace, form.filters()).count()
    return render(request, "curation/export.html", {"form": form, "count": count})


# --- review queue --------------------------------------------------------------------------------


@workspace_view(min_role=Role.VIEWER)
@require_GET
def review(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    from workbench.experiments.selectors import review_grading

    queue = analysis.review_queue(workspace, request.user)  # type: ignore[arg-type]
    return render(
        request,
        "curation/review.html",
        {
            "queue": queue,
            "can_pick": request.membership.can_edit,  # type: ignore[attr-defined]
            # Experiment answers waiting for people's grades (experiments' own partial).
            "experiment_grading": review_grading(workspace),
        },
    )


@workspace_view(min_role=Role.MEMBER)
@require_GET
def review_next(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """The next run of the queue after those skipped (``?skip=<id>,<id>``)."""
    skipped = {s for s in request.GET.get("skip", "").split(",") if s}
    queue = analysis.review_queue(workspace, request.user)  # type: ignore[arg-type]
    item = next((i for i in queue if str(i.run.pk) not in skipped), None)
    if item is None:
        messages.success(request, "The review queue is empty: nothing left for you to judge.")
        return redirect("curation:review", ws=workspace.slug)
    url = reverse("runs:detail", kwargs={"ws": workspace.slug, "run_id": item.run.pk})
    return redirect(f"{url}?review=1&skip={','.join(sorted(skipped))}#curation")


# --- leaderboard and judges ----------------------------------------------------------------------


@workspace_view(min_role=Role.VIEWER)
@require_GET
def leaderboard(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    tag = request.GET.get("tag", "")
    standings = analysis.leaderboard_of(workspace, tag=tag)
    return render(
        request,
        "curation/leaderboard.html",
        {
            "standings": standings,
            "tag": tag,
            "tags": selectors.tags_of_workspace(workspace),
            "chart": leaderboard_chart(standings),
        },
    )


@workspace_view(min_role=Role.VIEWER)
@require_GET
def judges(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    reliability = analysis.judge_agreement(workspace)
    return render(
        request,
        "curation/judges.html",
        {
            "reliability": reliability,
            "judge_chart": agreement_chart(reliability.by_judge),
            "pool_chart": agreement_chart(reliability.by_pool),
        },
    )
