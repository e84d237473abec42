from __future__ import annotations

from django.urls import path

from workbench.pools import views

app_name = "pools"

urlpatterns = [
    path("w/<slug:ws>/pools/", views.pool_index, name="index"),
    path("w/<slug:ws>/pools/new/", views.pool_create, name="create"),
    path("w/<slug:ws>/pools/<slug:pool>/", views.pool_detail, name="detail"),
    path("w/<slug:ws>/pools/<slug:pool>/edit/", views.pool_edit, name="edit"),
    path("w/<slug:ws>/pools/<slug:pool>/clone/", views.pool_clone, name="clone"),
    path("w/<slug:ws>/pools/<slug:pool>/delete/", views.pool_delete, name="delete"),
]
