"""Start the team server: load the core once, then serve the API with uvicorn."""

from __future__ import annotations

import time
from collections.abc import Callable

import uvicorn

from supportdesk.server.app import create_app
from supportdesk.server.core import ServerCore
from supportdesk.settings import Settings


def make_server(core: ServerCore, host: str, port: int, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for the core (TLS when ``serve.ssl_certfile`` and ``ssl_keyfile`` are set)."""
    serve = core.settings.serve
    config = uvicorn.Config(
        create_app(core), host=host, port=port, log_level=log_level, access_log=False,
        ssl_certfile=str(serve.ssl_certfile) if serve.ssl_certfile else None,
        ssl_keyfile=str(serve.ssl_keyfile) if serve.ssl_keyfile else None,
        timeout_graceful_shutdown=5,
    )
    return uvicorn.Server(config)


def bound_url(server: uvicorn.Server, scheme: str = "http") -> str:
    """The address the server listens on (the real port when it was asked for port 0)."""
    sock = server.servers[0].sockets[0]
    host, port = sock.getsockname()[:2]
    return f"{scheme}://{host}:{port}"


def serve(settings: Settings, host: str, port: int, say: Callable[[str], None] = print) -> None:
    started = time.perf_counter()
    core = ServerCore(settings)
    core.start(lambda text: say(f"  {text}"))
    server = make_server(core, host, port)
    scheme = "https" if settings.serve.ssl_certfile else "http"
    original_startup = server.startup

    async def startup(sockets=None) -> None:
        await original_startup(sockets)
        status = core.status()
        say(f"supportdesk server ready at {bound_url(server, scheme)} in {time.perf_counter() - started:.1f} s: "
            f"{status['backend']}:{status['model']}, adapter {status['adapter'] or 'none'}, "
            f"KB {status['chunks']} chunks, {core.queue.slots} answer(s) at a time")

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        core.close()
