"""Sign-up, log-in, log-out, password change and account settings."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.decorators.debug import sensitive_post_parameters

from workbench.accounts import services, throttle
from workbench.accounts.forms import AccountSettingsForm, LoginForm, SignupForm
from workbench.accounts.views._helpers import safe_next
from workbench.lib.errors import ServiceError


class LoginView(auth_views.LoginView):
    form_class = LoginForm
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def form_invalid(self, form: LoginForm) -> HttpResponse:  # type: ignore[override]
        response = super().form_invalid(form)
        if form.throttled:
            response.status_code = 429  # tells scripts (and tests) apart from a wrong password
        return response


@sensitive_post_parameters("password", "password_again")
def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect(safe_next(request))
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
                time_zone=form.cleaned_data["time_zone"],
            )
        except ServiceError as err:
            form.add_service_error(err)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}! This is your own workspace.")
            return redirect(safe_next(request))
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "next": request.POST.get("next") or request.GET.get("next", "")},
    )


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:account_settings")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        messages.success(self.request, "Your password has been changed.")
        return super().form_valid(form)


class PasswordResetView(auth_views.PasswordResetView):
    template_name = "accounts/password_reset.html"
    email_template_name = "accounts/email/password_reset.txt"
    subject_template_name = "accounts/email/password_reset_subject.txt"
    success_url = reverse_lazy("accounts:password_reset_done")

    def form_valid(self, form):  # type: ignore[no-untyped-def]
        email, ip = form.cleaned_data["email"], throttle.client_ip(self.request)
        if throttle.reset_blocked(email=email, ip=ip):
            form.add_error(None, throttle.reset_blocked_message())
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        throttle.reset_requested(email=email, ip=ip)
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "accounts/password_reset_confirm.html"
    success_url = reverse_lazy("accounts:password_reset_complete")


@login_required
def account_settings(request: HttpRequest) -> HttpResponse:
    user = request.user
    form = AccountSettingsForm(
        request.POST or None,
        initial={"email": user.email, "time_zone": user.time_zone},  # type: ignore[union-attr]
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.user_update(
                user=user,  # type: ignore[arg-type]
                email=form.cleaned_data["email"],
                time_zone=form.cleaned_data["time_zone"],
            )
        except ServiceError as err:
            form.add_service_error(err)
        else:
            messages.success(request, "Your settings have been saved.")
            return redirect("accounts:account_settings")
    return render(request, "accounts/account_settings.html", {"form": form})
