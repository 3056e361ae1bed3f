"""The team server's HTTP API (FastAPI): described by its OpenAPI schema at /openapi.json.

Streams (an answer, a reload, the status feed) are server-sent events; every other call is
JSON. Every route names the least role it needs; errors are ``{"detail": "..."}`` with a
message the TUI and the CLI show as is.

Laid out as FastAPI's full-stack template lays out an API: ``routes/`` one router per area,
``deps.py`` what they share (the core, the settings, the caller and their role),
``middleware.py`` the authentication and body limit in front of them, ``sse.py`` the event
streams; ``create_app`` only puts them together around one ``ServerCore``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from supportdesk import __version__
from supportdesk.history import HistoryError
from supportdesk.server.core import CoreError, ServerCore
from supportdesk.server.deps import authenticate
from supportdesk.server.middleware import GuardedBodies
from supportdesk.server.routes import api, public
from supportdesk.server.tokens import ROLES


async def core_error(_: Request, exc: Exception) -> JSONResponse:
    """A request the core refuses: its status and message."""
    status = exc.status if isinstance(exc, CoreError) else 500
    return JSONResponse({"detail": str(exc)}, status_code=status)


async def history_error(_: Request, exc: Exception) -> JSONResponse:
    """A history database that is unreachable or refuses: 503 with its message, the server keeps serving."""
    return JSONResponse({"detail": str(exc)}, status_code=503)


def create_app(core: ServerCore) -> FastAPI:
    app = FastAPI(title="supportdesk", version=__version__,
                  description="One supportdesk for a support team: ask, search, reload, adapters, history.")
    app.add_exception_handler(CoreError, core_error)
    app.add_exception_handler(HistoryError, history_error)
    # Before any route: the caller is known before the body is read, and the body is counted as it comes.
    app.add_middleware(GuardedBodies, limit=core.settings.serve.max_body_kb * 1024,
                       authenticate=lambda header: authenticate(core, header))
    app.include_router(public)
    app.include_router(api)
    app.state.core = core
    app.state.roles = ROLES
    return app
