"""Datasets of tasks, and experiments that run them through several arms.

An arm is one way of answering (a pool in its fusion mode, one model alone, self-consistency,
self-fusion), frozen like a run's pool so later edits do not change what was measured. Every
(arm, item) pair has one ``ItemResult`` row, created up front; it links the ``Run`` that
answered it, so a restarted worker neither loses nor repeats finished items.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from workbench.experiments.checkers import CHECKER_LABELS


class DatasetSource(models.TextChoices):
    UPLOAD = "upload", "Uploaded"
    SAMPLE = "sample", "Built-in sample"
    CURATED = "curated", "From curated runs"


class Dataset(models.Model):
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="datasets"
    )
    name = models.CharField(max_length=120)
    description = models.CharField(max_length=300, blank=True)
    source = models.CharField(
        max_length=10, choices=DatasetSource.choices, default=DatasetSource.UPLOAD
    )
    filename = models.CharField(max_length=200, blank=True)
    item_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name


CHECKER_CHOICES = list(CHECKER_LABELS.items())


class DatasetItem(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    position = models.PositiveIntegerField()
    prompt = models.TextField()
    expected = models.TextField(blank=True)
    checker = models.CharField(max_length=20, choices=CHECKER_CHOICES, default="exact")
    checker_args = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "position"], name="one_item_per_position")
        ]

    def __str__(self) -> str:
        return f"#{self.position + 1} of {self.dataset_id}"


class ExperimentStatus(models.TextChoices):
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    FINISHED = "finished", "Finished"
    # Spend reached the budget cap: nothing more was dispatched.
    STOPPED = "stopped", "Stopped at the budget cap"
    CANCELLED = "cancelled", "Cancelled"


EXPERIMENT_ENDED = frozenset(
    {ExperimentStatus.FINISHED, ExperimentStatus.STOPPED, ExperimentStatus.CANCELLED}
)


class Experiment(models.Model):
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="experiments"
    )
    # PROTECT: the results mean nothing without the items they graded.
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="experiments")
    name = models.CharField(max_length=120)
    status = models.CharField(
        max_length=12,
        choices=ExperimentStatus.choices,
        default=ExperimentStatus.RUNNING,
        db_index=True,
    )
    concurrency = models.PositiveSmallIntegerField(default=4)
    budget_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    estimated_cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    estimate_unpriced = models.BooleanField(default=False)
    note = models.CharField(max_length=300, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Whose name the item runs are made in: the creator, or whoever resumed the experiment
    # after the creator left the workspace. Checked before every dispatch.
    runs_as = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The frozen one-member configuration that grades "judge (rubric)" items; None when the
    # dataset has none.
    grader_config = models.JSONField(null=True, blank=True)
    grader_label = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name

    @property
    def has_ended(self) -> bool:
        return self.status in EXPERIMENT_ENDED


class ArmKind(models.TextChoices):
    POOL = "pool", "Pool (fusion)"
    SOLO = "solo", "Single model"
    SELF_CONSISTENCY = "self_consistency", "Self-consistency (majority vote)"
    SELF_FUSION = "self_fusion", "Self-fusion (merged by a judge)"


class Arm(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="arms")
    position = models.PositiveSmallIntegerField()
    kind = models.CharField(max_length=20, choices=ArmKind.choices)
    label = models.CharField(max_length=200)
    pool = models.ForeignKey(
        "pools.Pool", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The frozen configuration every item's run gets (pools.services.pool_freeze's shape).
    config = models.JSONField()
    samples = models.PositiveSmallIntegerField(default=1)
    estimated_cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)

    class Meta:
        ordering = ["position"]

    def __str__(self) -> str:
        return self.label


class ItemStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    # Answered; the judge (rubric) grading run is in flight.
    GRADING = "grading", "Being graded"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


# Statuses whose runs are in flight: they hold a concurrency slot and a budget reservation.
IN_FLIGHT = (ItemStatus.RUNNING, ItemStatus.GRADING)


class ItemResult(models.Model):
    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="results")
    arm = models.ForeignKey(Arm, on_delete=models.CASCADE, related_name="results")
    item = models.ForeignKey(DatasetItem, on_delete=models.CASCADE, related_name="results")
    status = models.CharField(
        max_length=10, choices=ItemStatus.choices, default=ItemStatus.PENDING, db_index=True
    )
    run = models.OneToOneField(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="experiment_result",
    )
    # The judge (rubric) checker's grading call, a run of its own.
    grade_run = models.OneToOneField(
        "runs.Run",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="experiment_grade",
    )
    answer = models.TextField(blank=True)
    extracted = models.CharField(max_length=500, blank=True)
    correct = models.BooleanField(null=True, blank=True)  # None: ungraded (human) or failed
    detail = models.CharField(max_length=500, blank=True)
    # A person's grade (human items, or a judge's grade someone corrected).
    graded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    graded_at = models.DateTimeField(null=True, blank=True)
    grade_note = models.CharField(max_length=500, blank=True)
    # The worst case of this item's run, reserved against the experiment's cap when dispatched,
    # and of its grading run (judge items only); both stay reserved until the item is done.
    estimated_cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    grade_estimated_cost = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    grade_cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)
    dispatched_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["item__position", "arm__position"]
        constraints = [
            models.UniqueConstraint(fields=["arm", "item"], name="one_result_per_arm_item")
        ]
        indexes = [models.Index(fields=["experiment", "status"])]

    def __str__(self) -> str:
        return f"{self.arm_id}/{self.item_id} ({self.status})"
