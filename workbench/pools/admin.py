from __future__ import annotations

from django.contrib import admin

from workbench.pools.models import Pool, PoolMember


class PoolMemberInline(admin.TabularInline):
    model = PoolMember
    fields = ("position", "credential", "model", "model_custom", "temperature", "max_tokens")
    raw_id_fields = ("credential",)
    extra = 0


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "workspace", "mode", "judge_model", "updated_at")
    list_filter = ("mode",)
    search_fields = ("name", "slug", "workspace__slug")
    raw_id_fields = ("workspace", "judge_credential", "created_by")
    inlines = [PoolMemberInline]
