"""Forms of the accounts pages: they parse and check input; the rules live in services."""

from __future__ import annotations

import zoneinfo
from functools import cache
from typing import Any

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from workbench.accounts import throttle
from workbench.accounts.models import Role
from workbench.lib.errors import ServiceError


@cache
def time_zone_choices() -> list[tuple[str, str]]:
    zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")
    return [(zone, zone.replace("_", " ")) for zone in zones]


class ServiceErrorFormMixin:
    """Put a service's rule violation next to the field it names, or above the form."""

    def add_service_error(self, err: ServiceError) -> None:
        field = err.field if err.field in self.fields else None  # type: ignore[attr-defined]
        self.add_error(field, err.message)  # type: ignore[attr-defined]


class ThrottledLoginMixin:
    """Refuse log-in attempts once the throttle trips (on top of an AuthenticationForm)."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]

    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username") or ""
        ip = throttle.client_ip(self.request) if self.request else "unknown"
        if throttle.login_blocked(username=username, ip=ip):
            # Checked before the password so a blocked guesser learns nothing from the answer.
            raise ValidationError(throttle.blocked_message(), code="throttled")
        try:
            cleaned: dict[str, Any] = super().clean()  # type: ignore[misc]
        except ValidationError:
            throttle.login_failed(username=username, ip=ip)
            raise
        throttle.login_succeeded(username=username)
        return cleaned

    @property
    def throttled(self) -> bool:
        errors = self.non_field_errors().as_data()  # type: ignore[attr-defined]
        return any(err.code == "throttled" for err in errors)


class LoginForm(ThrottledLoginMixin, AuthenticationForm):
    """Django's log-in form, refusing attempts once the throttle trips."""


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin's log-in form (staff only), throttled with the same counts as the app's."""


class SignupForm(ServiceErrorFormMixin, forms.Form):
    username = forms.CharField(
        max_length=150,
        help_text="Letters, digits and @ . + - _ only.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autofocus": True}),
    )
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    password = forms.CharField(
        strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"})
    )
    password_again = forms.CharField(
        label="Password, again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    # Filled in by the browser's own zone (static/js/app.js); UTC when it says nothing we know.
    time_zone = forms.CharField(
        required=False, widget=forms.HiddenInput(attrs={"data-browser-time-zone": ""})
    )

    def clean_username(self) -> str:
        username = self.cleaned_data["username"].strip()
        UnicodeUsernameValidator()(username)
        return username

    def clean_time_zone(self) -> str:
        zone = self.cleaned_data.get("time_zone") or "UTC"
        return zone if zone in zoneinfo.available_timezones() else "UTC"

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        first, again = cleaned.get("password"), cleaned.get("password_again")
        if first and again and first != again:
            self.add_error("password_again", "The two passwords differ.")
        return cleaned


class AccountSettingsForm(ServiceErrorFormMixin, forms.Form):
    email = forms.EmailField(widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    time_zone = forms.ChoiceField(
        choices=time_zone_choices, help_text="Times are shown in this zone."
    )


class WorkspaceForm(ServiceErrorFormMixin, forms.Form):
    name = forms.CharField(
        max_length=80, widget=forms.TextInput(attrs={"autofocus": True, "placeholder": "Acme"})
    )


class WorkspaceSettingsForm(ServiceErrorFormMixin, forms.Form):
    name = forms.CharField(max_length=80)
    blind_mode = forms.BooleanField(
        required=False,
        label="Blind mode",
        help_text="Hide which model wrote an answer until someone has picked one.",
    )


class WorkspaceDeleteForm(forms.Form):
    confirm = forms.CharField(label="Type the workspace's slug to confirm")

    def __init__(self, *args: Any, slug: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.slug = slug
        self.fields["confirm"].widget.attrs["placeholder"] = slug

    def clean_confirm(self) -> str:
        value = self.cleaned_data["confirm"].strip()
        if value != self.slug:
            raise ValidationError(f"Type {self.slug} to delete this workspace.")
        return value


def _role_choices(*, include_owner: bool) -> list[tuple[str, str]]:
    return [(r.value, r.label) for r in Role if include_owner or r != Role.OWNER]


class InvitationForm(ServiceErrorFormMixin, forms.Form):
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)
    # Only a note of who the link is for; nothing is sent (the page says so).
    email = forms.EmailField(
        required=False,
        label="For (email, optional)",
        widget=forms.EmailInput(attrs={"placeholder": "bob@example.com"}),
    )

    def __init__(self, *args: Any, can_grant_owner: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(include_owner=can_grant_owner)  # type: ignore[attr-defined]


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)
