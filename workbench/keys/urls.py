from __future__ import annotations

from django.urls import path

from workbench.keys import views

app_name = "keys"

urlpatterns = [
    path("w/<slug:ws>/keys/", views.credential_index, name="index"),
    path("w/<slug:ws>/keys/<int:pk>/", views.credential_detail, name="detail"),
    path("w/<slug:ws>/keys/<int:pk>/test/", views.credential_test, name="test"),
    path("w/<slug:ws>/keys/<int:pk>/delete/", views.credential_delete, name="delete"),
    path("w/<slug:ws>/keys/<int:pk>/models/refresh/", views.catalog_refresh, name="refresh"),
    path("w/<slug:ws>/keys/<int:pk>/models/add/", views.catalog_add, name="model_add"),
    path("w/<slug:ws>/keys/<int:pk>/models/remove/", views.catalog_remove, name="model_remove"),
]
