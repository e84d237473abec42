from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from workbench.accounts.models import Invitation, Membership, User, Workspace


@admin.register(User)
class FusionUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("Preferences", {"fields": ("time_zone",)}))


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "personal", "created_at")
    search_fields = ("name", "slug")
    inlines = [MembershipInline]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("workspace", "role", "email", "created_at", "expires_at", "accepted_at")
    exclude = ("token",)  # the link is a credential; staff do not need to read it
