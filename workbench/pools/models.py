"""Pools: which models answer a prompt, how their answers are fused, and by which judge.

Runs never read a pool after they start: they keep the frozen copy from
``services.pool_freeze``, so editing or deleting a pool leaves history as it was.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Mode(models.TextChoices):
    BEST_OF = "best_of", "Best of"
    MERGE = "merge", "Merge"
    DEBATE = "debate", "Debate"


class DebateJudge(models.TextChoices):
    BEST_OF = "best_of", "Pick the best final answer"
    MERGE = "merge", "Merge the final answers"


class Pool(models.Model):
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="pools"
    )
    name = models.CharField(max_length=80)
    slug = models.SlugField(max_length=60)
    description = models.CharField(max_length=300, blank=True)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.BEST_OF)
    # Debate only: revision rounds after the first answers.
    rounds = models.PositiveSmallIntegerField(default=1)
    debate_judge = models.CharField(
        max_length=10, choices=DebateJudge.choices, default=DebateJudge.MERGE
    )
    system_prompt = models.TextField(blank=True)
    quorum = models.PositiveSmallIntegerField(null=True, blank=True)
    deadline_s = models.PositiveIntegerField(null=True, blank=True)
    budget_usd = models.DecimalField(max_digits=10, decimal_places=4, null=True, blank=True)
    # Blind curation for this pool's runs, on top of the workspace's own setting: model names
    # stay hidden on a run page until the person has judged it (curation.blind).
    blind_mode = models.BooleanField(default=False)

    # The judge lives on the pool: there is at most one, and it has no life of its own.
    judge_credential = models.ForeignKey(
        "keys.Credential",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="judged_pools",
    )
    judge_model = models.CharField(max_length=200, blank=True)
    judge_model_custom = models.BooleanField(default=False)
    judge_instructions = models.TextField(blank=True)
    judge_temperature = models.FloatField(null=True, blank=True, default=0.0)
    judge_max_tokens = models.PositiveIntegerField(null=True, blank=True)
    judge_swap_twice = models.BooleanField(default=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["workspace", "slug"], name="one_pool_slug_per_workspace"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_judge(self) -> bool:
        return bool(self.judge_model)


class PoolMember(models.Model):
    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="members")
    position = models.PositiveSmallIntegerField(default=0)
    # SET_NULL: deleting a credential leaves the seat visibly broken rather than silently gone.
    credential = models.ForeignKey(
        "keys.Credential",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="pool_members",
    )
    model = models.CharField(max_length=200)
    # True when the model was typed in although the catalog does not list it.
    model_custom = models.BooleanField(default=False)
    system_prompt = models.TextField(blank=True)
    temperature = models.FloatField(null=True, blank=True)
    max_tokens = models.PositiveIntegerField(null=True, blank=True)
    fallback_models = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return f"{self.pool}: {self.model}"
