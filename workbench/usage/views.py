"""The usage page of a workspace (spend, latency, errors, budgets), its CSV export, the budget
forms, and ``/metrics`` for Prometheus. The figures come from ``selectors``; charts are drawn
on the server (``charts``)."""

from __future__ import annotations

import csv
import hmac
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from workbench.accounts.access import require_role, workspace_view
from workbench.accounts.models import Membership, Role, Workspace
from workbench.lib.errors import ServiceError
from workbench.usage import charts, selectors
from workbench.usage.budgets import budget_set, budget_state, member_budget_set
from workbench.usage.metrics import metrics_text
from workbench.usage.models import WorkspaceBudget

MAX_RANGE_DAYS = 366


def _range(request: HttpRequest) -> selectors.Range:
    default = selectors.default_range()
    try:
        start = date.fromisoformat(request.GET.get("start") or default.start.isoformat())
        end = date.fromisoformat(request.GET.get("end") or default.end.isoformat())
    except ValueError:
        return default
    if end < start:
        start, end = end, start
    if (end - start).days >= MAX_RANGE_DAYS:
        start = end - timedelta(days=MAX_RANGE_DAYS - 1)
    return selectors.Range(start, end)


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(workspace: Workspace, span: selectors.Range) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())
    calls = selectors.calls_in(workspace, span)

    def lines() -> Iterator[str]:
        yield writer.writerow(selectors.CSV_FIELDS)
        for row in selectors.csv_rows(calls):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    name = f"usage-{workspace.slug}-{span.start}-{span.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@workspace_view(min_role=Role.VIEWER)
def usage_index(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    span = _range(request)
    if request.GET.get("format") == "csv":
        return _csv(workspace, span)
    summary = selectors.usage_summary(workspace, span)
    context = {
        "workspace": workspace,
        "span": span,
        "summary": summary,
        "total_text": charts.priced_money(summary.total, summary.unpriced_calls),
        "days": charts.day_chart(summary.by_day),
        "sections": [
            {
                "key": s.key,
                "title": s.title,
                "groups": s.groups,
                "bars": charts.bars([(g.label, g.cost, g.unpriced) for g in s.groups]),
            }
            for s in summary.sections
        ],
        "budget": WorkspaceBudget.objects.filter(workspace=workspace).first(),
        "workspace_budget": budget_state(workspace),
        "my_budget": budget_state(workspace, request.user),  # type: ignore[arg-type]
        "member_budgets": selectors.member_budgets(workspace),
        "can_set_budget": request.membership.has_role(Role.ADMIN),  # type: ignore[attr-defined]
        "month_start": timezone.localtime().replace(day=1).date(),
    }
    return render(request, "usage/index.html", context)


def _money_or_none(raw: str) -> Decimal | None:
    raw = (raw or "").strip().lstrip("$")
    if not raw:
        return None
    try:
        return Decimal(raw).quantize(Decimal("0.01"))
    except InvalidOperation:
        raise ServiceError(f"{raw!r} is not an amount in dollars.") from None


@require_POST
@workspace_view(min_role=Role.ADMIN)
def budget_update(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    require_role(request, Role.ADMIN)
    try:
        budget_set(
            workspace=workspace,
            monthly_usd=_money_or_none(request.POST.get("monthly_usd", "")),
            per_user_monthly_usd=_money_or_none(request.POST.get("per_user_monthly_usd", "")),
        )
        messages.success(request, "Budget saved.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect("usage:index", ws=workspace.slug)


@require_POST
@workspace_view(min_role=Role.ADMIN)
def member_budget_update(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    """One member's own monthly cap; an empty amount goes back to the default per member."""
    require_role(request, Role.ADMIN)
    raw_user = request.POST.get("user", "")
    membership = (
        Membership.objects.filter(workspace=workspace, user_id=raw_user)
        .select_related("user")
        .first()
        if raw_user.isdigit()
        else None
    )
    if membership is None:
        messages.error(request, "Choose a member of this workspace.")
        return redirect("usage:index", ws=workspace.slug)
    user = membership.user
    try:
        amount = _money_or_none(request.POST.get("monthly_usd", ""))
        member_budget_set(workspace=workspace, user=user, monthly_usd=amount)
        if amount is None:
            messages.success(request, f"{user.username} is back on the default cap per member.")
        else:
            messages.success(request, f"{user.username}'s monthly cap is now ${amount:.2f}.")
    except ServiceError as exc:
        messages.error(request, exc.message)
    return redirect(reverse("usage:index", kwargs={"ws": workspace.slug}) + "#member-budgets")


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format; a bearer token from ``METRICS_TOKEN``, 404 while it is unset."""
    expected = settings.METRICS_TOKEN
    if not expected:
        raise Http404
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        return HttpResponse("Unauthorized\n", status=401, content_type="text/plain")
    return HttpResponse(metrics_text(), content_type="text/plain; version=0.0.4; charset=utf-8")
