"""A real team server (uvicorn on a free loopback port) around a ServerCore, for tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from supportdesk.server.core import ServerCore
from supportdesk.server.run import bound_url, make_server


@contextmanager
def running(core: ServerCore, port: int = 0) -> Iterator[str]:
    """Serve ``core`` on 127.0.0.1 (any free port unless given); yields its URL; stops it after."""
    core.stopping.clear()
    server = make_server(core, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield bound_url(server)
    finally:
        core.stopping.set()  # status feeds end, so their connections close at once
        server.should_exit = True
        thread.join(10)
