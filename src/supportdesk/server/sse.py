"""Server-sent events: what a thread emits, streamed to the client as it happens."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from supportdesk.server.core import Emit

Events = asyncio.Queue[tuple[str, dict[str, Any]]]


def event(name: str, data: dict[str, Any]) -> dict[str, str]:
    return {"event": name, "data": json.dumps(data, ensure_ascii=False)}


def queue_events(loop: asyncio.AbstractEventLoop) -> tuple[Events, Emit]:
    """A queue of events and the thread-safe ``emit(name, data)`` that fills it."""
    queue: Events = asyncio.Queue()

    def emit(name: str, data: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (name, data))

    return queue, emit


async def stream_queue(queue: Events, last: tuple[str, ...],
                       on_close: Callable[[], None] = lambda: None) -> AsyncIterator[dict[str, str]]:
    """Stream the queue's events until one named in ``last``; ``on_close`` when the client left before."""
    finished = False
    try:
        while True:
            name, data = await queue.get()
            yield event(name, data)
            if name in last:
                finished = True
                return
    finally:
        if not finished:
            on_close()


def thread_events(work: Callable[[Emit], None], last: tuple[str, ...],
                  on_close: Callable[[], None] = lambda: None) -> AsyncIterator[dict[str, str]]:
    """Run ``work(emit)`` on a thread; stream what it emits until an event named in ``last``."""
    queue, emit = queue_events(asyncio.get_running_loop())

    async def stream() -> AsyncIterator[dict[str, str]]:
        threading.Thread(target=work, args=(emit,), daemon=True).start()
        async for item in stream_queue(queue, last, on_close):
            yield item

    return stream()
