from __future__ import annotations

from django.urls import path

from workbench.usage import views

app_name = "usage"

urlpatterns = [
    path("w/<slug:ws>/usage/", views.usage_index, name="index"),
    path("w/<slug:ws>/usage/budget/", views.budget_update, name="budget"),
    path("w/<slug:ws>/usage/budget/member/", views.member_budget_update, name="member_budget"),
    path("metrics", views.metrics, name="metrics"),
]
