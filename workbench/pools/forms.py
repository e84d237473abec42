"""The pool editor: one form for the pool and its judge, a formset for the members.

The forms only parse; ``inputs.validate_pool`` holds the rules, and its errors (keyed by
paths such as "members.2.model") are put back next to the right field by ``attach_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django import forms

from workbench.accounts.forms import ServiceErrorFormMixin
from workbench.keys.models import Credential
from workbench.pools.inputs import MAX_MEMBERS, JudgeInput, MemberInput, PoolInput
from workbench.pools.models import DebateJudge, Mode

NO_JUDGE = ""


def credential_choices(credentials: Iterable[Credential]) -> list[tuple[str, Any]]:
    """Grouped by provider, so an option only needs the credential's own label."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for c in credentials:
        label = f"{c.label} (personal)" if c.is_personal else c.label
        groups.setdefault(c.kind.label, []).append((str(c.pk), label))
    return list(groups.items())


def _int_or_none(value: str | int | None) -> int | None:
    return int(value) if value not in (None, "") else None


class PoolForm(ServiceErrorFormMixin, forms.Form):
    name = forms.CharField(max_length=80)
    slug = forms.SlugField(
        max_length=60,
        required=False,
        help_text="The pool's name in URLs and the API. Leave empty to derive it from the name.",
    )
    description = forms.CharField(max_length=300, required=False)
    mode = forms.ChoiceField(choices=Mode.choices, widget=forms.RadioSelect, initial=Mode.BEST_OF)
    rounds = forms.IntegerField(
        min_value=1, max_value=5, initial=1, help_text="Revision rounds after the first answers."
    )
    debate_judge = forms.ChoiceField(
        label="At the end", choices=DebateJudge.choices, initial=DebateJudge.MERGE
    )
    system_prompt = forms.CharField(
        label="Shared system prompt",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Given to every member that has no persona of its own.",
    )
    quorum = forms.IntegerField(
        required=False,
        min_value=1,
        help_text="Judge as soon as this many members have answered. Empty: wait for all.",
    )
    deadline_s = forms.IntegerField(
        label="Deadline (seconds)",
        required=False,
        min_value=1,
        help_text="Members still answering by then are cut off.",
    )
    budget_usd = forms.DecimalField(
        label="Budget per run (USD)",
        required=False,
        min_value=Decimal("0.0001"),
        decimal_places=4,
        help_text="A run whose estimate is above this is refused before any call.",
    )
    blind_mode = forms.BooleanField(
        label="Blind judging",
        required=False,
        help_text="Hide model names on this pool's runs until each person has picked, and "
        "show the answers in a shuffled order (a blind workspace is always blind).",
    )
    judge_credential = forms.ChoiceField(label="Credential", required=False)
    judge_model = forms.CharField(label="Model", required=False, max_length=200)
    judge_custom_model = forms.BooleanField(
        label="Not listed", required=False, help_text="Use a model the catalog does not list."
    )
    judge_temperature = forms.FloatField(
        label="Temperature", required=False, min_value=0, max_value=2, initial=0.0
    )
    judge_max_tokens = forms.IntegerField(label="Max tokens", required=False, min_value=1)
    judge_swap_twice = forms.BooleanField(
        label="Judge twice, with every answer moved to another position",
        required=False,
        help_text="Cancels the judge's bias for the first (or last) answer; one more call.",
    )
    judge_instructions = forms.CharField(
        label="Instructions",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What matters in this domain, e.g. 'prefer answers that cite sources'.",
    )

    def __init__(self, *args: Any, credentials: list[Credential], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["judge_credential"].choices = [
            (NO_JUDGE, "No judge: people pick (best of only)"),
            *credential_choices(credentials),
        ]

    def judge_input(self) -> JudgeInput | None:
        data = self.cleaned_data
        if not data.get("judge_credential") and not data.get("judge_model"):
            return None
        return JudgeInput(
            credential_id=_int_or_none(data.get("judge_credential")),
            model=data.get("judge_model") or "",
            instructions=data.get("judge_instructions") or "",
            temperature=data.get("judge_temperature"),
            max_tokens=data.get("judge_max_tokens"),
            swap_twice=bool(data.get("judge_swap_twice")),
            custom_model=bool(data.get("judge_custom_model")),
        )


class MemberForm(forms.Form):
    credential = forms.ChoiceField()
    model = forms.CharField(
        max_length=200, widget=forms.TextInput(attrs={"spellcheck": "false", "autocomplete": "off"})
    )
    custom_model = forms.BooleanField(
        label="Not listed", required=False, help_text="Use models the catalog does not list."
    )
    temperature = forms.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = forms.IntegerField(required=False, min_value=1)
    system_prompt = forms.CharField(
        label="Persona / system prompt", required=False, widget=forms.Textarea(attrs={"rows": 2})
    )
    fallback_models = forms.CharField(
        label="Fallback models",
        required=False,
        help_text="Comma-separated; tried in order when the model keeps failing.",
    )

    def __init__(self, *args: Any, credentials: list[Credential], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["credential"].choices = [("", "Choose…"), *credential_choices(credentials)]

    def member_input(self) -> MemberInput:
        data = self.cleaned_data
        return MemberInput(
            credential_id=_int_or_none(data.get("credential")),
            model=data.get("model") or "",
            system_prompt=data.get("system_prompt") or "",
            temperature=data.get("temperature"),
            max_tokens=data.get("max_tokens"),
            fallback_models=[m.strip() for m in (data.get("fallback_models") or "").split(",")],
            custom_model=bool(data.get("custom_model")),
        )


class BaseMemberFormSet(forms.BaseFormSet):  # type: ignore[type-arg]
    def live_forms(self) -> list[MemberForm]:
        """The rows not removed, in order; row i is member i of the pool."""
        return [
            f
            for f in self.forms
            if not (self.can_delete and self._should_delete_form(f))
            and (f.has_changed() or not f.empty_permitted)
        ]


# Rows removed in the browser stay in the formset (marked deleted) until the page is sent,
# so the formset allows more rows than a pool may have; the service enforces the real limit.
MemberFormSet = forms.formset_factory(
    MemberForm,
    formset=BaseMemberFormSet,
    extra=0,
    can_delete=True,
    max_num=MAX_MEMBERS * 4,
    absolute_max=MAX_MEMBERS * 4,
)


def pool_input(form: PoolForm, formset: BaseMemberFormSet) -> PoolInput:
    data = form.cleaned_data
    return PoolInput(
        name=data["name"],
        slug=data.get("slug") or "",
        description=data.get("description") or "",
        mode=data["mode"],
        rounds=data.get("rounds") or 1,
        debate_judge=data.get("debate_judge") or DebateJudge.MERGE,
        system_prompt=data.get("system_prompt") or "",
        quorum=data.get("quorum"),
        deadline_s=data.get("deadline_s"),
        budget_usd=data.get("budget_usd"),
        blind_mode=bool(data.get("blind_mode")),
        members=[f.member_input() for f in formset.live_forms()],
        judge=form.judge_input(),
    )


def initial_of(data: PoolInput) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Initial values of the form and the member rows for a pool (or a preset)."""
    judge = data.judge
    form = {
        "name": data.name,
        "slug": data.slug,
        "description": data.description,
        "mode": data.mode,
        "rounds": data.rounds,
        "debate_judge": data.debate_judge,
        "system_prompt": data.system_prompt,
        "quorum": data.quorum,
        "deadline_s": data.deadline_s,
        "budget_usd": data.budget_usd,
        "blind_mode": data.blind_mode,
        "judge_credential": str(judge.credential_id or "") if judge else NO_JUDGE,
        "judge_model": judge.model if judge else "",
        "judge_custom_model": judge.custom_model if judge else False,
        "judge_temperature": judge.temperature if judge else 0.0,
        "judge_max_tokens": judge.max_tokens if judge else None,
        "judge_swap_twice": judge.swap_twice if judge else False,
        "judge_instructions": judge.instructions if judge else "",
    }
    members = [
        {
            "credential": str(m.credential_id or ""),
            "model": m.model,
            "custom_model": m.custom_model,
            "temperature": m.temperature,
            "max_tokens": m.max_tokens,
            "system_prompt": m.system_prompt,
            "fallback_models": ", ".join(m.fallback_models),
        }
        for m in data.members
    ]
    return form, members


_JUDGE_FIELDS = {
    "credential": "judge_credential",
    "model": "judge_model",
    "temperature": "judge_temperature",
    "max_tokens": "judge_max_tokens",
    "instructions": "judge_instructions",
}


def attach_errors(
    errors: Mapping[str, list[str]], form: PoolForm, formset: BaseMemberFormSet
) -> list[str]:
    """Put each service error next to its field; return those that belong to no field."""
    rows = formset.live_forms()
    loose: list[str] = []
    for path, messages in errors.items():
        parts = path.split(".")
        for message in messages:
            if parts[0] == "members" and len(parts) == 3 and int(parts[1]) < len(rows):
                row = rows[int(parts[1])]
                field = parts[2] if parts[2] in row.fields else None
                row.add_error(field, message)
            elif parts[0] == "judge":
                field = _JUDGE_FIELDS.get(parts[1] if len(parts) > 1 else "", "judge_credential")
                form.add_error(field, message)
            elif parts[0] in form.fields:
                form.add_error(parts[0], message)
            else:
                loose.append(message)
    return loose
