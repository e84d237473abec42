from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.http import HttpRequest, HttpResponse

from workbench.accounts.forms import AdminLoginForm
from workbench.accounts.models import Invitation, Membership, User, Workspace

# /admin/login/ is as open to password guessing as /login/: same throttle, same counts.
admin.site.login_form = AdminLoginForm
_admin_login = admin.site.login


def _throttled_admin_login(request: HttpRequest, extra_context: Any = None) -> HttpResponse:
    response = _admin_login(request, extra_context)
    form = (getattr(response, "context_data", None) or {}).get("form")
    if isinstance(form, AdminLoginForm) and form.is_bound and form.throttled:
        response.status_code = 429  # as the app's log-in answers, for scripts and monitoring
    return response


admin.site.login = _throttled_admin_login  # type: ignore[method-assign]


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
