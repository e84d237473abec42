from __future__ import annotations

from django.urls import path

from workbench.runs import views

app_name = "runs"

urlpatterns = [
    path("", views.run_list, name="list"),
    path("new/", views.run_new, name="new"),
    path("new/estimate/", views.run_estimate, name="estimate"),
    path("<uuid:run_id>/", views.run_detail, name="detail"),
    path("<uuid:run_id>/panels/", views.run_panels, name="panels"),
    path("<uuid:run_id>/part/", views.run_part_html, name="part_html"),
    path("<uuid:run_id>/cancel/", views.run_cancel, name="cancel"),
    path("<uuid:run_id>/rerun/", views.run_rerun, name="rerun"),
    # The workspace navigation links every section by "<app>:index" (accounts.nav).
    path("", views.run_list, name="index"),
]
