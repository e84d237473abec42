"""Forms of the runs pages: starting a run, and filtering history."""

from __future__ import annotations

from typing import Any

from django import forms

from workbench.accounts.models import User, Workspace
from workbench.keys.models import Credential
from workbench.keys.selectors import catalogs_for, credentials_usable_by
from workbench.lib.errors import ServiceError
from workbench.pools.inputs import MAX_ROUNDS, describe_path
from workbench.pools.models import Mode, Pool
from workbench.pools.selectors import pools_for
from workbench.runs.history import RunFilters, filter_choices
from workbench.runs.launch import AdhocMember
from workbench.runs.models import RunStatus

ADHOC_ROWS = 5
SOURCE_POOL = "pool"
SOURCE_ADHOC = "adhoc"


def credential_choice_label(credential: Credential) -> str:
    kind = credential.kind.label
    return (
        f"{credential.label} · {kind}"
        if kind.lower() not in credential.label.lower()
        else (credential.label)
    )


class NewRunForm(forms.Form):
    source = forms.ChoiceField(
        choices=[(SOURCE_POOL, "A pool"), (SOURCE_ADHOC, "Pick models")],
        widget=forms.RadioSelect,
        initial=SOURCE_POOL,
    )
    pool = forms.ChoiceField(required=False, label="Pool")
    # Length and emptiness are the service's to judge (prompt_validate), with its wording.
    prompt = forms.CharField(
        required=False,
        strip=False,
        widget=forms.Textarea(
            attrs={"rows": 7, "placeholder": "Ask something…", "spellcheck": "true"}
        ),
    )
    system_prompt = forms.CharField(
        required=False,
        strip=False,
        label="System prompt",
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Optional"}),
    )
    mode = forms.ChoiceField(choices=Mode.choices, initial=Mode.BEST_OF, required=False)
    rounds = forms.IntegerField(
        min_value=1, max_value=MAX_ROUNDS, initial=1, required=False, label="Debate rounds"
    )
    judge_credential = forms.ChoiceField(required=False, label="Judge credential")
    judge_model = forms.CharField(required=False, max_length=200, label="Judge model")

    def __init__(self, *args: Any, workspace: Workspace, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.workspace = workspace
        self.pools: list[Pool] = list(pools_for(user, workspace))
        self.credentials = list(credentials_usable_by(user, workspace))
        self.catalogs = catalogs_for(user, workspace)
        self.fields["pool"].choices = [("", "Choose a pool…")] + [
            (str(p.pk), p.name) for p in self.pools
        ]
        credential_choices = [("", "Credential…")] + [
            (str(c.pk), credential_choice_label(c)) for c in self.credentials
        ]
        self.fields["judge_credential"].choices = credential_choices
        for i in range(ADHOC_ROWS):
            self.fields[f"m{i}_credential"] = forms.ChoiceField(
                required=False, choices=credential_choices, label=f"Model {i + 1} credential"
            )
            self.fields[f"m{i}_model"] = forms.CharField(
                required=False, max_length=200, label=f"Model {i + 1}"
            )
        if not self.is_bound and not self.pools:
            self.initial.setdefault("source", SOURCE_ADHOC)

    # --- what the template lays out ------------------------------------------------------------
    def member_rows(self) -> list[tuple[forms.BoundField, forms.BoundField]]:
        return [(self[f"m{i}_credential"], self[f"m{i}_model"]) for i in range(ADHOC_ROWS)]

    def credential_kinds(self) -> dict[str, str]:
        return {str(c.pk): c.provider for c in self.credentials}

    # --- what the view uses ----------------------------------------------------------------------
    @property
    def source_value(self) -> str:
        value = self.data.get("source") if self.is_bound else self.initial.get("source")
        return SOURCE_ADHOC if value == SOURCE_ADHOC else SOURCE_POOL

    def chosen_pool(self) -> Pool | None:
        raw = self.data.get("pool") if self.is_bound else self.initial.get("pool")
        return next((p for p in self.pools if str(p.pk) == str(raw or "")), None)

    def adhoc_members(self) -> list[AdhocMember]:
        members = []
        for i in range(ADHOC_ROWS):
            credential, model = self._choice(f"m{i}_credential"), self._text(f"m{i}_model")
            if credential is None and not model:
                continue  # an empty row
            members.append(AdhocMember(credential, model))
        return members

    def adhoc_judge(self) -> AdhocMember | None:
        credential, model = self._choice("judge_credential"), self._text("judge_model")
        return AdhocMember(credential, model) if credential is not None or model else None

    def adhoc_mode(self) -> str:
        value = self._text("mode")
        return value if value in Mode.values else Mode.BEST_OF

    def adhoc_rounds(self) -> int:
        try:
            return max(1, min(MAX_ROUNDS, int(self._text("rounds") or 1)))
        except ValueError:
            return 1

    def prompt_text(self) -> str:
        return self._text("prompt", strip=False)

    def system_prompt_text(self) -> str:
        return self._text("system_prompt", strip=False)

    def _text(self, name: str, *, strip: bool = True) -> str:
        value = self.data.get(name, "") if self.is_bound else self.initial.get(name, "")
        value = str(value or "")
        return value.strip() if strip else value

    def _choice(self, name: str) -> int | None:
        value = self._text(name)
        return int(value) if value.isdigit() else None

    def add_service_error(self, err: ServiceError) -> None:
        """Put a service's error next to its field, or on top of the form."""
        errors = getattr(err, "errors", None)
        if errors:  # a PoolValidationError: every problem, by path
            for path, messages in errors.items():
                for message in messages:
                    self.add_error(self._field_for(path), f"{describe_path(path)}{message}")
            return
        field = err.field if err.field in self.fields else None
        self.add_error(field, err.message)

    def _field_for(self, path: str) -> str | None:
        parts = path.split(".")
        if self.source_value == SOURCE_POOL:
            return "pool"
        if parts[0] == "members" and len(parts) > 2 and parts[1].isdigit():
            # The path indexes the non-empty rows; map it back to the row on screen.
            filled = [
                i
                for i in range(ADHOC_ROWS)
                if self._choice(f"m{i}_credential") is not None or self._text(f"m{i}_model")
            ]
            index = int(parts[1])
            if index < len(filled):
                name = f"m{filled[index]}_{'credential' if parts[2] == 'credential' else 'model'}"
                return name
        if parts[0] == "judge":
            return "judge_credential" if parts[-1] == "credential" else "judge_model"
        if parts[0] in self.fields:
            return parts[0]
        return None


class RunFilterForm(forms.Form):
    q = forms.CharField(
        required=False,
        label="Search prompts",
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Search prompts…"}),
    )
    pool = forms.TypedChoiceField(required=False, coerce=int, empty_value=None)
    model = forms.ChoiceField(required=False)
    status = forms.ChoiceField(required=False)
    author = forms.ChoiceField(required=False)
    date_from = forms.DateField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="To", widget=forms.DateInput(attrs={"type": "date"})
    )
    picked = forms.ChoiceField(
        required=False,
        label="Human pick",
        choices=[("", "Any"), ("yes", "Picked"), ("no", "Not picked")],
    )

    def __init__(self, *args: Any, workspace: Workspace, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = filter_choices(workspace)
        self.fields["pool"].choices = [("", "All pools")] + [
            (str(pk), name) for pk, name in choices.pools
        ]
        self.fields["model"].choices = [("", "All models")] + [(m, m) for m in choices.models]
        self.fields["author"].choices = [("", "Anyone")] + [(a, a) for a in choices.authors]
        self.fields["status"].choices = [("", "Any status")] + [
            (value, label)
            for value, label in RunStatus.choices
            if value != RunStatus.FINISHED_WITHOUT_VERDICT
        ]

    def filters(self) -> RunFilters:
        """The valid filters; an invalid one (a stale link) is ignored, not an error page."""
        if not self.is_bound:
            return RunFilters()
        self.is_valid()
        data = self.cleaned_data
        return RunFilters(
            pool=data.get("pool"),
            model=data.get("model") or "",
            status=data.get("status") or "",
            author=data.get("author") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            q=(data.get("q") or "").strip(),
            picked={"yes": True, "no": False}.get(data.get("picked") or ""),
        )
