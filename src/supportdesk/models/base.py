"""One interface for every answering model: stream text, finish with timings, cancel any time.

A backend turns chat messages + options into a ``Generation``: iterate it for text chunks;
when iteration ends (finished, length limit, or cancelled), ``generation.stats`` holds the
timings. ``generation.cancel()`` may be called from any thread. Errors are ``BackendError``
subclasses whose message tells the user what to do; nothing here imports Textual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 256
    temperature: float = 0.2
    top_p: float = 0.9
    top_k: int = 40
    repeat_penalty: float = 1.1
    seed: int | None = 0
    stop: tuple[str, ...] = ()
    citation_limit: int | None = None
    """When set, backends that can constrain decoding only emit markers [1]..[citation_limit]."""


@dataclass
class GenerationStats:
    """Timings of one generation. Durations in milliseconds."""

    backend: str
    model: str
    adapter: str | None = None
    ttft_ms: float | None = None
    total_ms: float = 0.0
    tokens: int = 0
    tokens_per_s: float | None = None
    prompt_tokens: int | None = None
    prompt_cached_tokens: int | None = None
    load_ms: float = 0.0
    finish_reason: Literal["stop", "length", "cancelled", "error"] = "stop"
    backend_figures: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("ttft_ms", "total_ms", "tokens_per_s", "load_ms"):
            if isinstance(data[key], float):
                data[key] = round(data[key], 2)
        return data


@dataclass(frozen=True)
class ModelInfo:
    backend: str
    name: str
    detail: str = ""
    available: bool = True


class BackendError(RuntimeError):
    """A model backend could not do what was asked; the message says how to fix it."""


class BackendUnavailable(BackendError):
    """The backend cannot be reached or started (server down, runtime not installed)."""


class ModelMissing(BackendError):
    """The model (or the adapter) named in the settings does not exist."""


class Generation:
    """A streaming generation: iterate for text; ``stats`` is set when iteration ends.

    ``produce`` is the backend's generator of text pieces; it receives this object so it can
    check ``cancelled`` between tokens and fill in backend figures (token counts, durations).
    """

    def __init__(self, produce: Callable[[Generation], Iterator[str]], stats: GenerationStats) -> None:
        self._produce = produce
        self.stats = stats
        self._cancel = threading.Event()
        self.text = ""
        self.done = False

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[str]:
        started = time.perf_counter()
        first: float | None = None
        pieces = self._produce(self)
        try:
            if self.cancelled:  # cancelled before it began: the model never starts on the prompt
                return
            for piece in pieces:
                if self.cancelled:
                    self.stats.finish_reason = "cancelled"
                    break
                if not piece:
                    continue
                if first is None:
                    first = time.perf_counter()
                    self.stats.ttft_ms = (first - started) * 1000
                self.text += piece
                yield piece
        except Exception:
            self.stats.finish_reason = "error"
            raise
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()
            end = time.perf_counter()
            self.stats.total_ms = (end - started) * 1000
            if self.cancelled:
                self.stats.finish_reason = "cancelled"
            if first is not None and self.stats.tokens > 1 and "eval_duration_ms" not in self.stats.backend_figures:
                decode_s = end - first
                self.stats.tokens_per_s = (self.stats.tokens - 1) / decode_s if decode_s > 0 else None
            self.done = True

    def run(self, on_text: Callable[[str], None] | None = None) -> str:
        """Consume the whole stream (optionally echoing it); returns the text."""
        for piece in self:
            if on_text is not None:
                on_text(piece)
        return self.text


class ChatBackend(Protocol):
    """What the router and the TUI need from a model."""

    name: str

    @property
    def model_name(self) -> str: ...

    @property
    def adapter_name(self) -> str | None: ...

    def generate(self, messages: list[ChatMessage], options: GenerationOptions) -> Generation: ...

    def list_models(self) -> list[ModelInfo]: ...

    def count_tokens(self, text: str) -> int: ...
