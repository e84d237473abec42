"""Provider credentials: who may use which provider with which (encrypted) keys, the models
each credential offers, and the admin-editable price table."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from fusion.providers.registry import PROVIDER_KINDS, ProviderKind


class Scope(models.TextChoices):
    # Personal: only its owner sees and uses it. Workspace: every member may use it in pools
    # and runs; nobody, owners included, can read the keys back.
    PERSONAL = "personal", "Personal"
    WORKSPACE = "workspace", "Workspace"


PROVIDER_CHOICES = [(kind, spec.label) for kind, spec in PROVIDER_KINDS.items()]


class Credential(models.Model):
    workspace = models.ForeignKey(
        "accounts.Workspace", on_delete=models.CASCADE, related_name="credentials"
    )
    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.PERSONAL)
    # Set exactly when the scope is personal.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="credentials",
    )
    # A key of fusion.providers.registry.PROVIDER_KINDS; no choices here, so a new kind in the
    # registry needs no migration.
    provider = models.CharField(max_length=32)
    label = models.CharField(max_length=80)
    base_url = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The last "Test": when, whether every key worked, and the provider's words if not.
    checked_at = models.DateTimeField(null=True, blank=True)
    check_ok = models.BooleanField(null=True)
    check_message = models.CharField(max_length=1000, blank=True)
    models_refreshed_at = models.DateTimeField(null=True, blank=True)
    models_error = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["label", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(scope=Scope.PERSONAL) & Q(owner__isnull=False))
                | (Q(scope=Scope.WORKSPACE) & Q(owner__isnull=True)),
                name="credential_owner_iff_personal",
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def kind(self) -> ProviderKind:
        return PROVIDER_KINDS[self.provider]

    @property
    def is_personal(self) -> bool:
        return self.scope == Scope.PERSONAL

    @property
    def reference(self) -> str:
        """How a frozen pool configuration names this credential."""
        return f"cred:{self.pk}"


class CredentialKey(models.Model):
    """One API key of a credential's key pool, encrypted; only its last four characters are
    kept in clear, to tell keys apart."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="keys")
    ciphertext = models.TextField()
    hint = models.CharField(max_length=4)
    position = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["position", "id"]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return f"…{self.hint}"


class ModelSource(models.TextChoices):
    LISTED = "listed", "Listed by the provider"
    MANUAL = "manual", "Entered by hand"


class CatalogModel(models.Model):
    """A model a credential offers: fetched from the provider's list, or entered by hand for
    servers that do not list (a refresh replaces listed entries and keeps manual ones)."""

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="catalog")
    model_id = models.CharField(max_length=200)
    source = models.CharField(max_length=10, choices=ModelSource.choices)
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id"]
        constraints = [
            models.UniqueConstraint(fields=["credential", "model_id"], name="one_catalog_entry")
        ]

    def __str__(self) -> str:
        return self.model_id


class PriceSource(models.TextChoices):
    BUILTIN = "builtin", "Built-in"
    CUSTOM = "custom", "Edited"


class ModelPrice(models.Model):
    """USD per million tokens for a model id, or for every id starting with a ``prefix*``.

    Built-in rows mirror ``fusion.costs.DEFAULT_PRICES`` and follow it on upgrades; a row edited
    in the admin becomes "custom" and is never overwritten.
    """

    model = models.CharField(
        max_length=200,
        unique=True,
        help_text="A model id as the provider names it (e.g. gpt-4o-mini), or a prefix "
        "ending in * (e.g. sim-*). Date suffixes and provider prefixes are matched loosely.",
    )
    input_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    output_per_million = models.DecimalField(max_digits=10, decimal_places=4)
    unpriced = models.BooleanField(
        default=False,
        help_text="Treat this model as having no known price (its calls show as unpriced and "
        "are never counted as $0), e.g. when your contract differs from the built-in price.",
    )
    source = models.CharField(
        max_length=10, choices=PriceSource.choices, default=PriceSource.CUSTOM, editable=False
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model"]

    def __str__(self) -> str:
        return self.model
