"""Answering models behind one interface (``ChatBackend``): embedded llama.cpp, Ollama, or any
OpenAI-compatible server (vLLM, SGLang, llama.cpp's server).

Headless: nothing here imports Textual. ``create_backend(settings)`` picks the backend and
adapter from settings; ``SupportdeskChatModel`` exposes any backend to LangChain.
"""

from __future__ import annotations

from supportdesk.models.adapters import AdapterInfo, find_adapter, list_adapters, read_active
from supportdesk.models.base import (
    BackendError,
    BackendUnavailable,
    ChatBackend,
    ChatMessage,
    Generation,
    GenerationOptions,
    GenerationStats,
    ModelInfo,
    ModelMissing,
)
from supportdesk.settings import Settings

__all__ = [
    "AdapterInfo",
    "BackendError",
    "BackendUnavailable",
    "ChatBackend",
    "ChatMessage",
    "Generation",
    "GenerationOptions",
    "GenerationStats",
    "ModelInfo",
    "ModelMissing",
    "create_backend",
    "default_options",
    "find_adapter",
    "list_adapters",
    "read_active",
    "resolve_adapter",
]

NO_ADAPTER = "none"


def resolve_adapter(settings: Settings, name: str | None = None) -> AdapterInfo | None:
    """The adapter to apply: an explicit name, else settings, else the active one; 'none' for the bare base."""
    chosen = name or settings.model.adapter or read_active(settings.data_dir)
    if not chosen or chosen == NO_ADAPTER:
        return None
    return find_adapter(settings.adapters_dir, chosen)


def create_backend(settings: Settings, backend: str | None = None, adapter: str | None = None) -> ChatBackend:
    kind = backend or settings.model.backend
    cfg = settings.model
    if kind == "ollama":
        from supportdesk.models.ollama_backend import OllamaBackend

        model = cfg.ollama_model if not adapter or adapter == NO_ADAPTER else f"supportdesk-{adapter}"
        return OllamaBackend(cfg.ollama_host, model, cfg.context_tokens, cfg.ollama_connect_timeout,
                             cfg.ollama_read_timeout)
    if kind == "openai":
        from supportdesk.models.openai_backend import OpenAIBackend

        key = cfg.openai_api_key.get_secret_value() if cfg.openai_api_key is not None else None
        info = resolve_adapter(settings, adapter) if adapter != NO_ADAPTER else None
        name = adapter if adapter and adapter != NO_ADAPTER else (info.name if info else None)
        return OpenAIBackend(cfg.openai_base_url, cfg.openai_model, key, name, cfg.ollama_connect_timeout,
                             cfg.ollama_read_timeout)
    if kind == "embedded":
        from supportdesk.models.embedded import EmbeddedBackend

        return EmbeddedBackend(cfg.gguf_path, resolve_adapter(settings, adapter), cfg.context_tokens, cfg.threads,
                               cfg.adaptive_threads, cfg.generation_nice)
    raise BackendError(f"unknown backend '{kind}' (use 'embedded', 'ollama' or 'openai')")


def default_options(settings: Settings, **overrides: object) -> GenerationOptions:
    values = {"max_tokens": settings.model.max_tokens, "temperature": settings.model.temperature}
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GenerationOptions(**values)  # type: ignore[arg-type]
