"""A run: one prompt through one (frozen) pool configuration, its candidates, the judge's
verdict and every provider call it made."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    # The candidates stand but the judge gave no verdict.
    FINISHED_WITHOUT_VERDICT = "finished_without_verdict", "Finished without verdict"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_STATUSES = frozenset(
    {
        RunStatus.FINISHED,
        RunStatus.FINISHED_WITHOUT_VERDICT,
        RunStatus.FAILED,
        RunStatus.CANCELLED,
    }
)
# The configuration key a run copied from another workspace carries: the original's id.
COPIED_FROM = "copied_from"


class RunSource(models.TextChoices):
    WEB = "web", "Web"
    API = "api", "API"  # the REST API (/api/v1/)
    GATEWAY = "gateway", "Gateway"  # the OpenAI- and Anthropic-compatible endpoints
    EXPERIMENT = "experiment", "Experiment"


class Run(models.Model):
    # A UUID: run ids appear in websocket URLs and API responses; they should not be guessable
    # or count how busy a workspace is.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="runs"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="runs"
    )
    pool = models.ForeignKey(
        "pools.Pool", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs"
    )
    pool_name = models.CharField(max_length=120, blank=True)
    # The pool configuration as it was when the run was made (pools.services.pool_freeze).
    config = models.JSONField()
    mode = models.CharField(max_length=20)
    prompt = models.TextField()
    system_prompt = models.TextField(blank=True)
    source = models.CharField(max_length=12, choices=RunSource.choices, default=RunSource.WEB)
    rerun_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns"
    )

    status = models.CharField(
        max_length=30, choices=RunStatus.choices, default=RunStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)
    cancel_requested = models.BooleanField(default=False)
    # Claims by a worker (the first one and every resumption): the fencing token a worker's
    # writes carry, so one that lost the run (reaped, taken over) cannot write over it.
    attempts = models.PositiveSmallIntegerField(default=0)
    # Times the reaper re-enqueued the run after its worker went silent, and when it last did.
    resumes = models.PositiveSmallIntegerField(default=0)
    requeued_at = models.DateTimeField(null=True, blank=True)
    # When the run's task reached the broker. A run committed but never handed over (the
    # process died, or Redis was down, between the commit and the publish) stays null and is
    # handed over again by the reaper.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.PositiveIntegerField(default=0)

    # Each judge pass's text and details by part ("judge/analysis", "judge/synthesis", …).
    judge_parts = models.JSONField(default=dict, blank=True)
    verdict = models.JSONField(null=True, blank=True)
    winner = models.CharField(max_length=20, blank=True)  # candidate id the judge picked
    # What the API returns: the winner's text (best-of) or the judge's synthesis.
    fused_text = models.TextField(blank=True)

    estimated_cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    budget_usd = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    total_cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cost_unpriced = models.BooleanField(default=False)  # some call had no price
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    wall_ms = models.FloatField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["workspace", "-created_at"])]

    def __str__(self) -> str:
        return f"Run {self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class CandidateStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    STREAMING = "streaming", "Streaming"
    RETRYING = "retrying", "Retrying"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


UNFINISHED_CANDIDATE_STATUSES = frozenset(
    {CandidateStatus.QUEUED, CandidateStatus.STREAMING, CandidateStatus.RETRYING}
)


class Candidate(models.Model):
    """One member's answer in one round (round 0 = first answers, 1.. = debate revisions)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="candidates")
    member = models.CharField(max_length=20)  # "m1"
    round = models.PositiveSmallIntegerField(default=0)
    position = models.PositiveSmallIntegerField(default=0)  # order of the member in the pool
    provider = models.CharField(max_length=120)  # credential label, for display
    provider_kind = models.CharField(max_length=30, blank=True)
    model = models.CharField(max_length=200)
    status = models.CharField(
        max_length=12, choices=CandidateStatus.choices, default=CandidateStatus.QUEUED
    )
    text = models.TextField(blank=True)
    error = models.TextField(blank=True)
    permanent = models.BooleanField(default=False)
    finish_reason = models.CharField(max_length=40, blank=True)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["round", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "member", "round"], name="one_candidate_per_member_round"
            )
        ]

    def __str__(self) -> str:
        return f"{self.member} round {self.round} of run {self.run_id}"

    @property
    def key(self) -> str:
        return f"{self.member}/{self.round}"


class CallStatus(models.TextChoices):
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    SKIPPED = "skipped", "Skipped"


class ProviderCall(models.Model):
    """Every provider call a run made, judge passes and debate rounds included."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="calls")
    call_id = models.CharField(max_length=64)
    candidate = models.CharField(max_length=20)  # "m1", "judge", "judge#2"
    round = models.PositiveSmallIntegerField(default=0)
    phase = models.CharField(max_length=20, blank=True)  # a judge pass: score, analysis, …
    provider = models.CharField(max_length=120)
    model = models.CharField(max_length=200)
    key_label = models.CharField(max_length=40, blank=True)
    status = models.CharField(max_length=12, choices=CallStatus.choices)
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    tokens_estimated = models.BooleanField(default=False)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    latency_ms = models.FloatField(default=0)
    attempts = models.PositiveSmallIntegerField(default=1)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["run", "call_id"], name="one_record_per_call")
        ]

    def __str__(self) -> str:
        return f"{self.candidate} {self.model} ({self.status})"
