"""What people make of a run: their judgments, comments, tags, review flags and share links.

The judge's verdict stays on the run as it was; people's judgments sit beside it, one per
person per run, so agreement between the two can be measured later.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

# The pick that means "the judge's fused answer" rather than one member's.
FUSED = "fused"


class Choice(models.TextChoices):
    PICK = "pick", "Picked a winner"
    TIE = "tie", "Tie"
    NONE = "none", "None is good"


# A judgment with no choice yet: the person wrote a gold answer, a rationale or ratings but has
# not said which answer is best. It counts for nothing that needs a verdict (consensus,
# agreement, blind mode's reveal).
UNDECIDED = ""
DECIDED = (Choice.PICK, Choice.TIE, Choice.NONE)


class Judgment(models.Model):
    """One person's judgment of one run; edited in place, never duplicated."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="judgments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="judgments"
    )
    choice = models.CharField(max_length=8, choices=Choice.choices, blank=True, default=UNDECIDED)
    winner = models.CharField(max_length=20, blank=True)  # a member id ("m2") or FUSED
    ranking = models.JSONField(default=dict, blank=True)  # member -> rank (1 = best)
    ratings = models.JSONField(default=dict, blank=True)  # member -> 1..5
    rationale = models.TextField(blank=True)
    gold_answer = models.TextField(blank=True)
    # When the gold text itself last changed (not the pick or the rationale): what makes "the
    # most recent gold answer" of a run a stable choice (selectors.gold_of).
    gold_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["run", "user"], name="one_judgment_per_user_run")
        ]

    def __str__(self) -> str:
        return f"{self.user} on {self.run_id}: {self.label}"

    @property
    def label(self) -> str:
        """The categorical outcome: a member id, "fused", "tie", "none", or "" (undecided)."""
        return self.winner if self.choice == Choice.PICK else self.choice

    @property
    def decided(self) -> bool:
        return self.choice in DECIDED


class RunTag(models.Model):
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="tags")
    name = models.SlugField(max_length=40)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="one_tag_per_run")]

    def __str__(self) -> str:
        return self.name


class Comment(models.Model):
    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # One level of threading: a reply to a reply hangs off the same top comment.
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies"
    )
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"comment by {self.author} on {self.run_id}"


class ReviewFlag(models.Model):
    """A member asks for more eyes on a run; it joins the review queue."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="review_flags")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "user"], name="one_review_flag_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} flagged {self.run_id}"


def _share_token() -> str:
    return secrets.token_urlsafe(32)


class ShareLink(models.Model):
    """A read-only page of one run for whoever holds the token, logged in or not."""

    run = models.ForeignKey("runs.Run", on_delete=models.CASCADE, related_name="share_links")
    token = models.CharField(max_length=64, unique=True, default=_share_token)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    show_costs = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"share link of {self.run_id}"

    @property
    def is_live(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()
