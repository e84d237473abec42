"""Monthly spending caps of a workspace, for the whole workspace and for each member."""

from __future__ import annotations

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
