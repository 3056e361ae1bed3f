"""What the routes share, as FastAPI dependencies: the core, its settings, the caller and their role.

A route names what it needs in its parameters (``core: CoreDep``, ``who: Agent``); nothing is a
closure over one app, so each module under ``routes/`` stands alone.
"""

# No "from __future__ import annotations": FastAPI reads these aliases at runtime.

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from supportdesk.server.core import ServerCore
from supportdesk.server.tokens import Identity, Role, role_allows
from supportdesk.settings import Settings

API = "/v1"
"""The prefix of every route that needs a token (``/health`` is outside it)."""


async def get_core(request: Request) -> ServerCore:
    """The core this app serves (``create_app`` keeps it on ``app.state``)."""
    return request.app.state.core


CoreDep = Annotated[ServerCore, Depends(get_core)]


async def get_settings(core: CoreDep) -> Settings:
    return core.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def authenticate(core: ServerCore, header: str) -> Identity:
    """The caller named by an ``Authorization: Bearer`` header; 401 with the reason otherwise."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "no token: set SUPPORTDESK_TOKEN or pass --token (an admin creates one with "
                                 "'supportdesk serve token create --role agent --name NAME')",
                            headers={"WWW-Authenticate": "Bearer"})
    who = core.tokens.verify(token)
    if who is None:
        why = "expired" if core.tokens.expired(token) else "not recognised (revoked or mistyped)"
        raise HTTPException(401, f"token {why}: ask an admin for a new one", headers={"WWW-Authenticate": "Bearer"})
    return who


def identity(request: Request, core: CoreDep) -> Identity:
    who = getattr(request.state, "identity", None)  # set by GuardedBodies for every API path
    return who if isinstance(who, Identity) else authenticate(core, request.headers.get("authorization", ""))


def need(role: Role) -> Callable[[Identity], Identity]:
    """A dependency: the caller, if their role is ``role`` or above; 403 naming both otherwise."""
    what = {"agent": "asking", "trainer": "managing adapters and exporting the history",
            "admin": "reloading the knowledge base and managing tokens"}[role]

    def check(who: Annotated[Identity, Depends(identity)]) -> Identity:
        if not role_allows(who.role, role):
            raise HTTPException(403, f"{who.name} is {'an' if who.role[0] in 'aeiou' else 'a'} {who.role}: "
                                     f"{what} needs the {role} role")
        return who

    return check


Agent = Annotated[Identity, Depends(need("agent"))]
Trainer = Annotated[Identity, Depends(need("trainer"))]
Admin = Annotated[Identity, Depends(need("admin"))]
