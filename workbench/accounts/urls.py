from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from workbench.accounts.views import auth, invitations, members, workspaces

app_name = "accounts"

urlpatterns = [
    # people
    path("login/", auth.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", auth.signup, name="signup"),
    path("account/", auth.account_settings, name="account_settings"),
    path("account/password/", auth.PasswordChangeView.as_view(), name="password_change"),
    path("password-reset/", auth.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="accounts/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/complete/",
        auth_views.PasswordResetCompleteView.as_view(
            template_name="accounts/password_reset_complete.html"
        ),
        name="password_reset_complete",
    ),
    # workspaces
    path("workspaces/", workspaces.workspace_list, name="workspace_list"),
    path("workspaces/new/", workspaces.workspace_create, name="workspace_create"),
    path("w/<slug:ws>/", workspaces.workspace_home, name="workspace_home"),
    path("w/<slug:ws>/settings/", workspaces.workspace_settings, name="workspace_settings"),
    path("w/<slug:ws>/delete/", workspaces.workspace_delete, name="workspace_delete"),
    # members and invitations
    path("w/<slug:ws>/members/", members.workspace_members, name="workspace_members"),
    path(
        "w/<slug:ws>/members/<int:membership_id>/role/",
        members.membership_role,
        name="membership_role",
    ),
    path(
        "w/<slug:ws>/members/<int:membership_id>/remove/",
        members.membership_remove,
        name="membership_remove",
    ),
    path("w/<slug:ws>/leave/", members.membership_leave, name="membership_leave"),
    path("w/<slug:ws>/invitations/", invitations.invitation_create, name="invitation_create"),
    path(
        "w/<slug:ws>/invitations/<int:invitation_id>/revoke/",
        invitations.invitation_revoke,
        name="invitation_revoke",
    ),
    path("invite/<str:token>/", invitations.invitation_accept, name="invitation_accept"),
]
