"""Monthly spending caps of a workspace: for the whole workspace, for each member by default,
and for particular members (an owner's or admin's override)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WorkspaceBudget(models.Model):
    workspace = models.OneToOneField(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="budget"
    )
    # None: no cap. Calendar months, UTC.
    monthly_usd = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True)
    per_user_monthly_usd = models.DecimalField(
        max_digits=12, decimal_places=4, null=True, blank=True
    )
    # Touched by every reservation: the UPDATE is the lock that serialises them (on PostgreSQL
    # a row lock, on SQLite the database write lock), so no two runs reserve the same dollars.
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Budget of {self.workspace}"


class MemberBudget(models.Model):
    """One member's monthly cap, in place of the workspace's default cap per member."""

    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="member_budgets"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    monthly_usd = models.DecimalField(max_digits=12, decimal_places=4)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["workspace", "user"], name="one_budget_per_member")
        ]

    def __str__(self) -> str:
        return f"Budget of {self.user} in {self.workspace}"
