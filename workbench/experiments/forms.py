"""Forms of the experiments pages: uploading a dataset, and choosing an experiment's arms."""

from __future__ import annotations

from typing import Any

from django import forms

from workbench.accounts.models import User, Workspace
from workbench.experiments.arms import MAX_SAMPLES, MIN_SAMPLES, ArmChoice
from workbench.experiments.datasets import MAX_FILE_BYTES
from workbench.experiments.models import Dataset
from workbench.experiments.selectors import datasets_of
from workbench.experiments.services import MAX_CONCURRENCY
from workbench.lib.errors import ServiceError
from workbench.pools.models import Pool
from workbench.pools.selectors import pools_for


class DatasetUploadForm(forms.Form):
    name = forms.CharField(required=False, max_length=120, help_text="Defaults to the file name.")
    file = forms.FileField(
        help_text=f"JSONL or CSV, up to {MAX_FILE_BYTES // 2**20} MB.",
        widget=forms.ClearableFileInput(attrs={"accept": ".jsonl,.ndjson,.csv,.json"}),
    )


class NewExperimentForm(forms.Form):
    name = forms.CharField(required=False, max_length=120, help_text="Optional.")
    dataset = forms.ChoiceField(label="Dataset")
    pool = forms.ChoiceField(label="Pool")
    include_pool = forms.BooleanField(
        required=False, initial=True, label="The pool in its fusion mode"
    )
    include_solos = forms.BooleanField(
        required=False, initial=True, label="Each member model alone"
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

    def __init__(self, *args: Any, workspace: Workspace, user: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datasets: list[Dataset] = list(datasets_of(workspace))
        self.pools: list[Pool] = list(pools_for(user, workspace))
        self.fields["dataset"].choices = [(str(d.pk), f"{d.name} ({d.item_count} items)")
                                          for d in self.datasets]  # fmt: skip
        self.fields["pool"].choices = [(str(p.pk), p.name) for p in self.pools]
        # "<pool id>:<position>": any pool's member may be the one sampled.
        self.fields["base_member"].choices = [
            (p.name, [(f"{p.pk}:{i}", m.model) for i, m in enumerate(p.members.all())])
            for p in self.pools
        ]

    def _pool(self, pk: str) -> Pool | None:
        return next((p for p in self.pools if str(p.pk) == pk), None)

    def chosen_dataset(self) -> Dataset | None:
        wanted = self.cleaned_data.get("dataset") or self.data.get("dataset")
        return next((d for d in self.datasets if str(d.pk) == str(wanted)), None)

    def choice(self) -> ArmChoice:
        data = self.cleaned_data
        pool = self._pool(data["pool"])
        if pool is None:
            raise ServiceError("Choose a pool.", field="pool")
        base_pool, position = pool, 0
        if data.get("base_member"):
            pool_id, _, raw = str(data["base_member"]).partition(":")
            base_pool = self._pool(pool_id) or pool
            position = int(raw) if raw.isdigit() else 0
        return ArmChoice(
            pool=pool,
            include_pool=data["include_pool"],
            include_solos=data["include_solos"],
            self_consistency=data["self_consistency"],
            self_fusion=data["self_fusion"],
            samples=data["samples"],
            base_pool=base_pool,
            base_member=position,
        )

    def add_service_error(self, err: ServiceError) -> None:
        field = err.field if err.field in self.fields else None
        self.add_error(field, err.message)
