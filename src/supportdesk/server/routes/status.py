"""Status: the health check (no token), the status line, and its feed of changes."""

# No "from __future__ import annotations": FastAPI reads the dependencies' aliases at runtime.

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse

from supportdesk import __version__
from supportdesk.server.deps import Agent, CoreDep
from supportdesk.server.sse import event

public = APIRouter(tags=["status"])
"""Outside ``/v1``: answered without a token."""
router = APIRouter(tags=["status"])


@public.get("/health")
def health() -> dict[str, Any]:
    """No token needed: for load balancers and the client's reconnect."""
    return {"ok": True, "version": __version__}


@router.get("/status")
def status(who: Agent, core: CoreDep) -> dict[str, Any]:
    return {**core.status(), "you": {"name": who.name, "role": who.role}}


@router.get("/events")
async def events(request: Request, who: Agent, core: CoreDep) -> EventSourceResponse:
    """The status (KB generation, adapter, queue), sent whenever it changes."""

    async def feed() -> AsyncIterator[dict[str, str]]:
        last = None
        while not core.stopping.is_set() and not await request.is_disconnected():
            now = await asyncio.to_thread(core.status)
            if now != last:
                last = now
                yield event("status", now)
            await asyncio.sleep(0.25)

    return EventSourceResponse(feed(), ping=10)
