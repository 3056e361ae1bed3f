"""Adapters: the list (any agent), the model served to everyone switched (trainer)."""

# No "from __future__ import annotations": FastAPI reads the models and dependencies at runtime.

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from supportdesk.server.deps import Agent, CoreDep, Trainer

router = APIRouter(tags=["adapters"])


class ModelRequest(BaseModel):
    adapter: str | None = Field(None, description="Adapter name under adapters/, or 'none' for the bare base model.")
    backend: str | None = Field(None, description="embedded | ollama | openai (default: the one serving).")
    force: bool = Field(False, description="Activate an adapter that is unevaluated or worse than the base or the "
                                           "active one (refused with 409 otherwise).")


@router.get("/adapters")
def adapters(who: Agent, core: CoreDep) -> dict[str, Any]:
    return core.adapters()


@router.post("/model")
def switch_model(body: ModelRequest, who: Trainer, core: CoreDep) -> dict[str, Any]:
    """Activate an adapter (or another backend) for everyone; the previous one serves until it is loaded."""
    return core.switch_model(body.backend, body.adapter, force=body.force, by=who.name)
