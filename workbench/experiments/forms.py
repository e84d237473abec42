"""Forms of the experiments pages: uploading a dataset, choosing an experiment's arms, and a
person's grade of an answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import forms

from workbench.accounts.models import User, Workspace
from workbench.experiments.arms import (
    MAX_SAMPLES,
    MIN_SAMPLES,
    ArmChoice,
    GraderChoice,
    PoolModes,
)
from workbench.experiments.datasets import MAX_FILE_BYTES
from workbench.experiments.models import Dataset
from workbench.experiments.selectors import datasets_of
from workbench.experiments.services import MAX_CONCURRENCY
from workbench.keys.selectors import catalogs_for, credentials_usable_by
from workbench.lib.errors import ServiceError
from workbench.pools.inputs import MODES_NEEDING_JUDGE
from workbench.pools.models import Mode, Pool
from workbench.pools.selectors import pools_for


class DatasetUploadForm(forms.Form):
    name = forms.CharField(required=False, max_length=120, help_text="Defaults to the file name.")
    file = forms.FileField(
        help_text=f"JSONL or CSV, up to {MAX_FILE_BYTES // 2**20} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.ndjson,.csv,.json"}),
    )


@dataclass(frozen=True)
class ModeCell:
    mode: str
    label: str
    value: str  # "<pool id>:<mode>", the pool_modes checkbox value
    checked: bool
    disabled: bool  # merge and debate need a judge the pool does not have
    own: bool  # the pool's own mode


@dataclass(frozen=True)
class PoolRow:
    pool: Pool
    cells: list[ModeCell]


class NewExperimentForm(forms.Form):
    name = forms.CharField(required=False, max_length=120, help_text="Optional.")
    dataset = forms.ChoiceField(label="Dataset")
    # "<pool id>:<mode>": a pool in a fusion mode, one arm each (rendered as a table).
    pool_modes = forms.MultipleChoiceField(required=False, label="Pools and fusion modes")
    include_solos = forms.BooleanField(
        required=False,
        initial=True,
        label="Each member model alone",
        help_text="Every model of the chosen pools, once, answering on its own.",
    )
    self_consistency = forms.BooleanField(
        required=False,
        label="Self-consistency",
        help_text="One model sampled N times; the majority answer wins (no judge).",
    )
    self_fusion = forms.BooleanField(
        required=False,
        label="Self-fusion",
        help_text="One model sampled N times, merged by the same model as judge.",
    )
    base_member = forms.ChoiceField(required=False, label="Model to sample")
    samples = forms.IntegerField(
        min_value=MIN_SAMPLES, max_value=MAX_SAMPLES, initial=5, label="Samples (N)"
    )
    grader = forms.ChoiceField(
        required=False,
        label="Grader for judge (rubric) items",
        help_text="Grades answers against the expected answer and the item's rubric; each "
        "grading call is a run, priced like any other.",
    )
    concurrency = forms.IntegerField(
        min_value=1,
        max_value=MAX_CONCURRENCY,
        initial=4,
        label="Runs at once",
        help_text="How many item runs are in flight together.",
    )
    budget_usd = forms.DecimalField(
        required=False,
        min_value=0,
        max_digits=12,
        decimal_places=4,
        label="Budget cap (USD)",
        help_text="Refused if the estimate is over it; dispatching stops when spend reaches it.",
    )
    # The token of the estimate shown: the start is refused without it.
    estimate_token = forms.CharField(required=False, widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args: Any, workspace: Workspace, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datasets: list[Dataset] = list(datasets_of(workspace))
        self.pools: list[Pool] = list(pools_for(user, workspace).prefetch_related("members"))
        self.fields["dataset"].choices = [(str(d.pk), f"{d.name} ({d.item_count} items)")
                                          for d in self.datasets]  # fmt: skip
        self.fields["pool_modes"].choices = [
            (f"{p.pk}:{mode}", f"{p.name} ({label})")
            for p in self.pools
            for mode, label in Mode.choices
        ]
        # "<pool id>:<position>": any pool's member may be the one sampled.
        self.fields["base_member"].choices = [
            (p.name, [(f"{p.pk}:{i}", m.model) for i, m in enumerate(p.members.all())])
            for p in self.pools
        ]
        catalogs = catalogs_for(user, workspace)
        self.fields["grader"].choices = [("", "The first chosen pool's judge")] + [
            (c.label, [(f"{c.pk}:{model}", model) for model in catalogs.get(c.pk, [])])
            for c in credentials_usable_by(user, workspace)
            if catalogs.get(c.pk)
        ]

    def pool_rows(self) -> list[PoolRow]:
        """The pools × modes table: a pool's own mode is ticked for the first pool on a new
        form; merge and debate are off for a pool without a judge."""
        if self.is_bound:
            chosen = (
                set(self.data.getlist("pool_modes")) if hasattr(self.data, "getlist") else set()
            )
        else:
            chosen = {f"{self.pools[0].pk}:{self.pools[0].mode}"} if self.pools else set()
        return [
            PoolRow(
                pool,
                [
                    ModeCell(
                        mode,
                        str(label),
                        f"{pool.pk}:{mode}",
                        f"{pool.pk}:{mode}" in chosen,
                        mode in MODES_NEEDING_JUDGE and not pool.has_judge,
                        mode == pool.mode,
                    )
                    for mode, label in Mode.choices
                ],
            )
            for pool in self.pools
        ]

    def _pool(self, pk: str) -> Pool | None:
        return next((p for p in self.pools if str(p.pk) == pk), None)

    def chosen_dataset(self) -> Dataset | None:
        wanted = self.cleaned_data.get("dataset") or self.data.get("dataset")
        return next((d for d in self.datasets if str(d.pk) == str(wanted)), None)

    def choice(self) -> ArmChoice:
        data = self.cleaned_data
        modes: dict[int, list[str]] = {}
        for value in data.get("pool_modes") or []:
            pool_id, _, mode = str(value).partition(":")
            pool = self._pool(pool_id)
            if pool is not None:
                modes.setdefault(pool.pk, []).append(mode)
        pools = tuple(
            PoolModes(p, tuple(m for m, _ in Mode.choices if m in modes[p.pk]))
            for p in self.pools
            if p.pk in modes
        )
        if not pools:
            raise ServiceError(
                "Choose at least one pool and fusion mode: its members are also the "
                "single-model arms.",
                field="pool_modes",
            )
        base_pool, position = pools[0].pool, 0
        if data.get("base_member"):
            pool_id, _, raw = str(data["base_member"]).partition(":")
            base_pool = self._pool(pool_id) or base_pool
            position = int(raw) if raw.isdigit() else 0
        return ArmChoice(
            pools=pools,
            include_solos=data["include_solos"],
            self_consistency=data["self_consistency"],
            self_fusion=data["self_fusion"],
            samples=data["samples"],
            base_pool=base_pool,
            base_member=position,
        )

    def grader_choice(self) -> GraderChoice | None:
        raw = self.cleaned_data.get("grader") or ""
        credential, _, model = raw.partition(":")
        if not model or not credential.isdigit():
            return None
        return GraderChoice(int(credential), model)

    def add_service_error(self, err: ServiceError) -> None:
        field = err.field if err.field in self.fields else None
        if err.field == "pools":
            field = "pool_modes"
        self.add_error(field, err.message)


class GradeForm(forms.Form):
    correct = forms.TypedChoiceField(
        choices=[("1", "Correct"), ("0", "Incorrect")], coerce=lambda v: v == "1"
    )
    note = forms.CharField(required=False, max_length=500)
