"""The one NinjaAPI instance, mounted at /api/v1/ (OpenAPI at /api/v1/openapi.json)."""

from __future__ import annotations

from ninja import NinjaAPI

from workbench.api.auth import api_auth
from workbench.api.errors import register_error_handlers
from workbench.curation.api import router as curation_router
from workbench.experiments.api import router as experiments_router
from workbench.keys.api import router as keys_router
from workbench.pools.api import router as pools_router
from workbench.runs.api import router as runs_router

api = NinjaAPI(
    title="Fusion Workbench API",
    version="1",
    description="Credentials and pools of your workspaces. Keys are write-only: responses "
    "only ever show their last four characters.",
    urls_namespace="api",
    auth=api_auth(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
register_error_handlers(api)
api.add_router("/", keys_router)
api.add_router("/", pools_router)
api.add_router("/", runs_router)
api.add_router("/", experiments_router)
api.add_router("/", curation_router)
