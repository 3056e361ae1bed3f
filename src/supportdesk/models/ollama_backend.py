"""The Ollama backend: the official ``ollama`` client against a running server.

The brand-voice adapter is registered on the server as its own model (``supportdesk adapter
push`` creates it from the base + adapter blobs), so here a model name is all we need.
Server down → ``BackendUnavailable`` within a second (short connect timeout); the client
raises ``ConnectionError`` on plain calls but ``httpx.ConnectError`` while iterating a
stream, so both are mapped. A host that accepts and then says nothing (or stalls mid-stream)
is given up on after ``read_timeout`` seconds without a byte, not the client's five minutes.
A reply that is not Ollama's API (an HTML page, a broken stream line, a chunk without
``message.role``) is one ``BackendError``, never a parser traceback. Model missing →
``ModelMissing`` naming the command to run. Server text in errors is made terminal-safe.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from supportdesk.models.base import (
    BackendError,
    BackendUnavailable,
    ChatMessage,
    Generation,
    GenerationOptions,
    GenerationStats,
    ModelInfo,
    ModelMissing,
)
from supportdesk.sanitize import safe_text

NS_PER_MS = 1_000_000


def request_options(options: GenerationOptions, context_tokens: int) -> dict[str, Any]:
    """Our options in Ollama's names (``num_predict`` is the token limit)."""
    out: dict[str, Any] = {
        "num_predict": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "repeat_penalty": options.repeat_penalty,
        "num_ctx": context_tokens,
    }
    if options.seed is not None:
        out["seed"] = options.seed
    if options.stop:
        out["stop"] = list(options.stop)
    return out


def _field(chunk: Any, name: str) -> Any:
    if isinstance(chunk, Mapping):
        return chunk.get(name)
    return getattr(chunk, name, None)


def apply_final_chunk(stats: GenerationStats, chunk: Any) -> None:
    """Copy the server's own figures from the last (``done``) chunk into the stats."""
    figures = {}
    for name in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration", "load_duration", "total_duration"):
        value = _field(chunk, name)
        if value is None:
            continue
        figures[name.replace("_duration", "_duration_ms") if name.endswith("duration") else name] = (
            value / NS_PER_MS if name.endswith("duration") else value
        )
    stats.backend_figures.update(figures)
    if "eval_count" in figures:
        stats.tokens = int(figures["eval_count"])
    if "prompt_eval_count" in figures:
        stats.prompt_tokens = int(figures["prompt_eval_count"])
    if "load_duration_ms" in figures:
        stats.load_ms = float(figures["load_duration_ms"])
    if figures.get("eval_duration_ms") and figures.get("eval_count"):
        stats.tokens_per_s = figures["eval_count"] / (figures["eval_duration_ms"] / 1000)
    reason = _field(chunk, "done_reason")
    if reason == "length":
        stats.finish_reason = "length"


class OllamaBackend:
    """Chat through an Ollama server."""

    name = "ollama"

    def __init__(self, host: str, model: str, context_tokens: int = 8192, connect_timeout: float = 2.0,
                 read_timeout: float = 30.0) -> None:
        import httpx
        import ollama

        self.host = host
        self.model = model
        self.context_tokens = context_tokens
        self.read_timeout = read_timeout
        self._client = ollama.Client(
            host=host, timeout=httpx.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=5.0)
        )

    @property
    def model_name(self) -> str:
        return self.model

    @property
    def adapter_name(self) -> str | None:
        return None  # the adapter is baked into the Ollama model

    def _map_error(self, exc: Exception) -> BackendError:
        import httpx
        import ollama

        if isinstance(exc, (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout)):
            return BackendUnavailable(f"Ollama is not answering at {self.host}: start it with 'ollama serve'")
        if isinstance(exc, httpx.TimeoutException):
            return BackendUnavailable(
                f"Ollama at {self.host} accepted the connection but sent nothing for {self.read_timeout:g} s "
                "(setting model.ollama_read_timeout): is the server stuck, or something else listening there?"
            )
        if isinstance(exc, ollama.ResponseError):
            body = safe_text(str(exc.error))[:300]
            if exc.status_code == 404:
                return ModelMissing(
                    f"Ollama has no model '{self.model}': create it with 'supportdesk adapter push NAME' "
                    f"(or 'ollama create {self.model} -f adapters/NAME/Modelfile')"
                )
            return BackendError(f"Ollama error {exc.status_code}: {body}")
        if isinstance(exc, ValueError):  # JSONDecodeError, pydantic's ValidationError
            detail = safe_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)[:200]
            return BackendError(
                f"the server at {self.host} did not answer in Ollama's API ({type(exc).__name__}: {detail}): "
                "is it an Ollama server? (setting model.ollama_host)"
            )
        return BackendError(f"Ollama request failed: {type(exc).__name__}: {safe_text(str(exc))[:300]}")

    def generate(self, messages: list[ChatMessage], options: GenerationOptions) -> Generation:
        stats = GenerationStats(backend=self.name, model=self.model)

        def produce(gen: Generation) -> Iterator[str]:
            import httpx
            import ollama

            errors = (ConnectionError, httpx.HTTPError, ollama.ResponseError, ValueError)
            try:
                stream = self._client.chat(
                    model=self.model,
                    messages=[m.as_dict() for m in messages],
                    stream=True,
                    options=request_options(options, self.context_tokens),
                )
                for chunk in stream:
                    message = _field(chunk, "message")
                    text = _field(message, "content") if message is not None else None
                    if text:
                        stats.tokens += 1
                        yield text
                    if _field(chunk, "done"):
                        apply_final_chunk(stats, chunk)
                    if gen.cancelled:
                        close = getattr(stream, "close", None)
                        if close:
                            close()
                        return
            except errors as exc:
                raise self._map_error(exc) from exc

        return Generation(produce, stats)

    def list_models(self) -> list[ModelInfo]:
        import httpx
        import ollama

        try:
            listing = self._client.list()
        except (ConnectionError, httpx.HTTPError, ollama.ResponseError, ValueError) as exc:
            raise self._map_error(exc) from exc
        models = _field(listing, "models") or []
        out = []
        for item in models:
            name = _field(item, "model") or _field(item, "name")
            size = _field(item, "size") or 0
            out.append(ModelInfo(self.name, str(name), f"{size / 1e6:.0f} MB"))
        return out

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # the server exposes no tokenizer; ~4 chars per token

    def ping(self) -> bool:
        try:
            self._client.list()
        except Exception:  # noqa: BLE001 - any failure means "not usable"
            return False
        return True
