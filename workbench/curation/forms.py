"""Forms of the curation pages. They parse; the rules are in ``services``."""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import QueryDict

from workbench.accounts.models import Workspace
from workbench.curation.exports import ExportFilters
from workbench.curation.selectors import tags_of_workspace
from workbench.pools.models import Pool

EXPIRY_CHOICES = [("", "Never"), ("1", "1 day"), ("7", "7 days"), ("30", "30 days")]


def judgment_input(data: QueryDict, members: list[str]) -> dict[str, Any]:
    """The judgment form's fields as ``judgment_save`` takes them; per-answer numbers come as
    ``rank_<member>`` and ``rating_<member>``. A form without a gold answer field keeps the
    gold answer (None)."""
    return {
        "choice": data.get("choice", ""),
        "winner": data.get("winner", ""),
        "ranking": {m: data.get(f"rank_{m}", "") for m in members},
        "ratings": {m: data.get(f"rating_{m}", "") for m in members},
        "rationale": data.get("rationale", ""),
        "gold_answer": data.get("gold_answer"),
    }


def pick_value(data: QueryDict) -> tuple[str, str]:
    """The single "pick" radio group: a member id, "fused", "tie" or "none"."""
    value = data.get("pick", "")
    if value in ("tie", "none", ""):
        return value, ""
    return "pick", value


class CommentForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=10_000)
    parent = forms.IntegerField(required=False, widget=forms.HiddenInput)


class ShareForm(forms.Form):
    show_costs = forms.BooleanField(required=False, label="Show costs")
    expires_in_days = forms.ChoiceField(choices=EXPIRY_CHOICES, required=False, label="Expires")

    def expiry(self) -> int | None:
        value = self.cleaned_data.get("expires_in_days")
        return int(value) if value else None


class ExportForm(forms.Form):
    format = forms.ChoiceField(
        choices=[
            ("chat", "Chat fine-tuning (JSONL)"),
            ("pairs", "Preference pairs (JSONL)"),
            ("csv", "CSV"),
        ],
        initial="chat",
    )
    pool = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    tag = forms.ChoiceField(required=False)
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    curated_only = forms.BooleanField(
        required=False, initial=True, label="Only runs with a human pick or a gold answer"
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        pools = Pool.objects.filter(workspace=workspace).order_by("name")
        self.fields["pool"].choices = [("", "Any pool")] + [(p.pk, p.name) for p in pools]
        self.fields["tag"].choices = [("", "Any tag")] + [
            (t, t) for t in tags_of_workspace(workspace)
        ]

    def filters(self) -> ExportFilters:
        data = self.cleaned_data
        return ExportFilters(
            pool=data.get("pool"),
            tag=data.get("tag") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            curated_only=bool(data.get("curated_only")),
        )
