from __future__ import annotations

from django.urls import path

from workbench.tokens import views

app_name = "tokens"

urlpatterns = [
    path("w/<slug:ws>/tokens/", views.token_index, name="index"),
    path("w/<slug:ws>/tokens/<int:pk>/revoke/", views.token_revoke, name="revoke"),
]
