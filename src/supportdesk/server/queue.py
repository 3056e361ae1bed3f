"""A first-come-first-served queue in front of the model.

The embedded model writes one answer at a time (two would halve each other's speed on a
small CPU and double the memory); a model server (Ollama, vLLM) takes several at once.
``QueuedBackend`` wraps whichever backend serves: ``generate`` waits for a slot, in arrival
order, telling the asker how many questions are ahead; the slot is freed when the stream
ends, is cancelled, or fails. Search and routing run before ``generate`` and never wait here.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from supportdesk.models.base import ChatBackend, ChatMessage, Generation, GenerationOptions, GenerationStats, ModelInfo


class Ticket:
    """One answer's place in the queue; ``cancel`` takes it out (or stops its generation)."""

    def __init__(self, on_position: Callable[[int], None] | None = None) -> None:
        self.on_position = on_position
        self.cancelled = threading.Event()
        self.waited_ms = 0.0
        self.generation: Any = None

    def cancel(self) -> None:
        self.cancelled.set()
        if self.generation is not None:
            self.generation.cancel()


_current = threading.local()


def use_ticket(ticket: Ticket | None) -> None:
    """The ticket for generations started on this thread (the thread that writes one answer)."""
    _current.ticket = ticket


class GenerationQueue:
    def __init__(self, slots: int) -> None:
        self.slots = max(1, slots)
        self._cond = threading.Condition()
        self._waiting: deque[Ticket] = deque()
        self._running = 0

    @property
    def waiting(self) -> int:
        with self._cond:
            return len(self._waiting)

    @property
    def running(self) -> int:
        with self._cond:
            return self._running

    def acquire(self, ticket: Ticket) -> bool:
        """Wait for a slot in arrival order; False when the ticket was cancelled while waiting."""
        started = time.perf_counter()
        last_position = -1
        with self._cond:
            self._waiting.append(ticket)
            try:
                while True:
                    if ticket.cancelled.is_set():
                        return False
                    position = self._waiting.index(ticket)
                    if position == 0 and self._running < self.slots:
                        self._running += 1
                        return True
                    ahead = position + self._running - self.slots + 1
                    if ahead != last_position and ticket.on_position is not None:
                        last_position = ahead
                        self._cond.release()
                        try:
                            ticket.on_position(ahead)
                        finally:
                            self._cond.acquire()
                    self._cond.wait(0.2)
            finally:
                self._waiting.remove(ticket)
                ticket.waited_ms = (time.perf_counter() - started) * 1000
                self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._running = max(0, self._running - 1)
            self._cond.notify_all()


class _SlotGeneration:
    """The backend's generation, holding its queue slot until the stream is over."""

    def __init__(self, inner: Generation, release: Callable[[], None]) -> None:
        self._inner = inner
        self._release = release
        self._released = False

    def _free(self) -> None:
        if not self._released:
            self._released = True
            self._release()

    @property
    def stats(self) -> GenerationStats:
        return self._inner.stats

    @property
    def text(self) -> str:
        return self._inner.text

    def cancel(self) -> None:
        self._inner.cancel()

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._inner
        finally:
            self._free()

    def __del__(self) -> None:  # a stream dropped unread must not keep the model
        self._free()


class QueuedBackend:
    """Any ChatBackend, with a FIFO queue in front of ``generate``."""

    def __init__(self, inner: ChatBackend, queue: GenerationQueue) -> None:
        self.inner = inner
        self.queue = queue
        self.name = inner.name

    @property
    def model_name(self) -> str:
        return self.inner.model_name

    @property
    def adapter_name(self) -> str | None:
        return self.inner.adapter_name

    def load(self) -> None:
        load = getattr(self.inner, "load", None)
        if callable(load):
            load()

    def list_models(self) -> list[ModelInfo]:
        return self.inner.list_models()

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def generate(self, messages: list[ChatMessage], options: GenerationOptions) -> Any:
        ticket: Ticket = getattr(_current, "ticket", None) or Ticket()
        if not self.queue.acquire(ticket):
            stats = GenerationStats(backend=self.name, model=self.model_name, adapter=self.adapter_name)
            cancelled = Generation(lambda g: iter(()), stats)
            cancelled.cancel()
            return cancelled
        try:
            inner = self.inner.generate(messages, options)
        except BaseException:
            self.queue.release()
            raise
        inner.stats.backend_figures["queue_ms"] = round(ticket.waited_ms, 1)
        generation = _SlotGeneration(inner, self.queue.release)
        ticket.generation = generation
        if ticket.cancelled.is_set():
            generation.cancel()
        return generation
