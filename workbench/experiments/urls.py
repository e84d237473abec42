from __future__ import annotations

from django.urls import path

from workbench.experiments import views

app_name = "experiments"

urlpatterns = [
    # The workspace navigation links every section by "<app>:index" (accounts.nav).
    path("", views.experiment_list, name="index"),
    path("new/", views.experiment_new, name="new"),
    path("<int:experiment_id>/", views.experiment_detail, name="detail"),
    path("<int:experiment_id>/live/", views.experiment_live, name="live"),
    path("<int:experiment_id>/pause/", views.experiment_pause, name="pause"),
    path("<int:experiment_id>/resume/", views.experiment_resume, name="resume"),
    path("<int:experiment_id>/cancel/", views.experiment_cancel, name="cancel"),
    path("<int:experiment_id>/delete/", views.experiment_delete, name="delete"),
    path("<int:experiment_id>/grade/", views.experiment_grading, name="grading"),
    path("<int:experiment_id>/items/<int:result_id>/grade/", views.item_grade, name="item_grade"),
    path("<int:experiment_id>/results.csv", views.experiment_export_csv, name="export_csv"),
    path("<int:experiment_id>/results.json", views.experiment_export_json, name="export_json"),
    path("datasets/upload/", views.dataset_upload, name="dataset_upload"),
    path("datasets/sample/", views.dataset_sample, name="dataset_sample"),
    path("datasets/gold/", views.dataset_gold, name="dataset_gold"),
    path("datasets/<int:dataset_id>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:dataset_id>/delete/", views.dataset_delete, name="dataset_delete"),
]
