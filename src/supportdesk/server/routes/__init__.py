"""The API's routes, one router per area (the tags of the OpenAPI schema): status, answers, kb,
adapters, history, tokens, insights, approved. ``api`` holds them all under ``/v1``; ``public`` the health check."""

from fastapi import APIRouter

from supportdesk.server.deps import API
from supportdesk.server.routes import adapters, answers, approved, history, insights, kb, status, tokens

public = status.public
api = APIRouter(prefix=API)
for area in (status, answers, kb, adapters, history, tokens, insights, approved):
    api.include_router(area.router)

__all__ = ["api", "public"]
