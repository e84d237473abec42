from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from workbench.api.api import api
from workbench.curation.urls import judges_patterns
from workbench.lib import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("workbench.accounts.urls")),
    path("", include("workbench.keys.urls")),
    path("", include("workbench.pools.urls")),
    path("api/v1/", api.urls),
    path("", include("workbench.gateway.urls")),
    path("", include("workbench.tokens.urls")),
    path("", include("workbench.usage.urls")),
    path("w/<slug:ws>/runs/", include("workbench.runs.urls")),
    path("w/<slug:ws>/experiments/", include("workbench.experiments.urls")),
    path("", include("workbench.curation.urls")),
    path("w/<slug:ws>/judges/", include(judges_patterns)),
]
