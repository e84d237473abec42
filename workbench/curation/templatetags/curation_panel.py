"""``{% curation_panel %}``: the pick-and-annotate panel of a run page, for the run page and
the panels fragment its live script refetches."""

from __future__ import annotations

from typing import Any

from django import template
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from workbench.curation.display import panel_context

register = template.Library()


@register.simple_tag(takes_context=True)
def curation_panel(context: template.Context) -> SafeString:
    request = context.get("request")
    run = context.get("run")
    membership = getattr(request, "membership", None)
    if request is None or run is None or membership is None:
        return SafeString("")
    data: dict[str, Any] = panel_context(run, request.user, membership)
    data["review"] = request.GET.get("review") == "1"
    data["skip"] = request.GET.get("skip", "")
    # render_to_string escapes the context itself and returns a SafeString.
    return render_to_string("curation/partials/panel.html", data, request=request)
