"""``{% runs_hiding_names runs as hidden %}``: which runs of a list keep their model names from
the person reading it (blind mode, ``curation.blind``), for the runs list's winner column."""

from __future__ import annotations

from typing import Any

from django import template

from workbench.curation.blind import runs_hiding_names as _runs_hiding_names

register = template.Library()


@register.simple_tag(takes_context=True)
def runs_hiding_names(context: template.Context, runs: Any) -> set[Any]:
    request = context.get("request")
    workspace = getattr(request, "workspace", None)
    if request is None or workspace is None:
        return set()
    return _runs_hiding_names(list(runs), request.user, workspace)
