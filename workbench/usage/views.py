"""The usage page of a workspace (spend, latency, errors, budget), its CSV export, the budget
form, and ``/metrics`` for Prometheus."""

from __future__ import annotations

import csv
import hmac
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib import messages
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from workbench.accounts.access import require_role, workspace_view
from workbench.accounts.models import Role, Workspace
from workbench.lib.errors import ServiceError
from workbench.usage import charts, selectors
from workbench.usage.budgets import budget_set, budget_state
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

    def lines():  # type: ignore[no-untyped-def]
        yield writer.writerow(selectors.CSV_FIELDS)
        for row in selectors.csv_rows(calls):
            yield writer.writerow(row)

    response = StreamingHttpResponse(lines(), content_type="text/csv")
    name = f"usage-{workspace.slug}-{span.start}-{span.end}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _section(key: str, title: str, groups: list[selectors.Group]) -> dict[str, object]:
    return {
        "key": key,
        "title": title,
        "groups": groups,
        "bars": charts.bars([(g.label, g.cost) for g in groups]),
    }


def _section(key: str, title: str, groups: list[selectors.Group]) -> dict[str, object]:
    return {
        "key": key,
        "title": title,
        "groups": groups,
        "bars": charts.bars([(g.label, g.cost) for g in groups]),
    }


@require_GET
@workspace_view(min_role=Role.VIEWER)
def usage_index(request: HttpRequest, workspace: Workspace) -> HttpResponse:
    span = _range(request)
    if request.GET.get("format") == "csv":
        return _csv(workspace, span)
    calls = selectors.calls_in(workspace, span)
    by_model = selectors.spend_by(calls, "model")
    by_provider = selectors.spend_by(calls, "provider")
    by_pool = selectors.spend_by(calls, "run__pool_name")
    by_user = selectors.spend_by(calls, "run__created_by__username")
    stats = selectors.model_stats(calls)
    total = sum((g.cost for g in by_model), Decimal(0))
    budget = WorkspaceBudget.objects.filter(workspace=workspace).first()
    context = {
        "workspace": workspace,
        "span": span,
        "total": total,
        "total_text": charts._money(total),
        "call_count": sum(g.calls for g in by_model),
        "tokens": sum(g.input_tokens + g.output_tokens for g in by_model),
        "days": charts.day_chart(selectors.spend_by_day(calls, span)),
        "sections": [
            _section("model", "By model", by_model),
            _section("provider", "By provider", by_provider),
            _section("pool", "By pool", by_pool),
            _section("user", "By member", by_user),
        ],
        "stats": stats,
        "provider_errors": selectors.provider_errors(stats),
        "budget": budget,
        "workspace_budget": budget_state(workspace),
        "my_budget": budget_state(workspace, request.user),  # type: ignore[arg-type]
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
