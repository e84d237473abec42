"""Admin views of credentials show labels and key hints only: no field holds a key in clear,
and the ciphertext is left out too (staff have no use for it)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from workbench.keys.models import CatalogModel, Credential, CredentialKey, ModelPrice, PriceSource


class CredentialKeyInline(admin.TabularInline):
    model = CredentialKey
    fields = ("display", "position", "created_at")
    readonly_fields = ("display", "position", "created_at")
    extra = 0
    can_delete = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Keys are added through the app, which encrypts them; a raw admin field could not.
        return False


class CatalogInline(admin.TabularInline):
    model = CatalogModel
    fields = ("model_id", "source", "added_at")
    readonly_fields = ("added_at",)
    extra = 0


@admin.register(Credential)
class CredentialAdmin(admin.ModelAdmin):
    list_display = ("label", "provider", "scope", "workspace", "owner", "key_count", "check_ok")
    list_filter = ("provider", "scope")
    search_fields = ("label", "workspace__slug", "owner__username")
    fields = (
        "workspace",
        "scope",
        "owner",
        "provider",
        "label",
        "base_url",
        "checked_at",
        "check_ok",
        "check_message",
        "models_refreshed_at",
    )
    # Who may use a credential is the app's business (services check membership and the
    # owner-iff-personal constraint): moving a key to another workspace, or a scope without its
    # owner, from here would hand keys to strangers or fail the constraint with a 500. The
    # provider and base URL stay too: the app's form runs the SSRF guard on them, this would not.
    readonly_fields = (
        "workspace",
        "scope",
        "owner",
        "provider",
        "base_url",
        "checked_at",
        "check_ok",
        "check_message",
        "models_refreshed_at",
    )
    inlines = [CredentialKeyInline, CatalogInline]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A credential is made in the app, which encrypts its keys and checks its base URL.
        return False

    @admin.display(description="keys")
    def key_count(self, obj: Credential) -> int:
        return obj.keys.count()


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = (
        "model", "input_per_million", "output_per_million", "unpriced", "source", "updated_at",
    )  # fmt: skip
    list_editable = ("input_per_million", "output_per_million", "unpriced")
    list_filter = ("source", "unpriced")
    search_fields = ("model",)

    def save_model(self, request: HttpRequest, obj: ModelPrice, form: Any, change: bool) -> None:
        # An edited row is the operator's and must survive upgrades of the built-in table.
        obj.source = PriceSource.CUSTOM
        super().save_model(request, obj, form, change)
