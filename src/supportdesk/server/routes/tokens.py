"""Tokens (admin): list, create (the token is in the reply only), revoke."""

# No "from __future__ import annotations": FastAPI reads the models and dependencies at runtime.

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from supportdesk.server.deps import Admin, CoreDep
from supportdesk.server.tokens import TokenError

router = APIRouter(tags=["tokens"])


class TokenRequest(BaseModel):
    name: str
    role: str = Field(description="agent | trainer | admin")
    expires_days: float | None = None


@router.get("/tokens")
def tokens(who: Admin, core: CoreDep) -> list[dict[str, Any]]:
    return core.tokens.list()


@router.post("/tokens")
def create_token(body: TokenRequest, who: Admin, core: CoreDep) -> dict[str, Any]:
    """The token is in this reply only; the server keeps its hash."""
    try:
        token = core.tokens.create(body.name, body.role, body.expires_days)
    except TokenError as exc:
        raise HTTPException(422, str(exc)) from exc
    return {"name": body.name, "role": body.role, "token": token}


@router.delete("/tokens/{name}")
def revoke_token(name: str, who: Admin, core: CoreDep) -> dict[str, Any]:
    if not core.tokens.revoke(name):
        raise HTTPException(404, f"no active token named {name!r}")
    return {"revoked": name}
