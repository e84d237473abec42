"""The REST API under /api/v1/: one NinjaAPI (``workbench.api.api.api``), a router per app."""
