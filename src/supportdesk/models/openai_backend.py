"""The OpenAI-compatible backend: the official ``openai`` client against vLLM, SGLang or
llama.cpp's server — the engines that batch many chats and serve many LoRA adapters on one base.

The adapter is chosen per request by model name: the base model is ``model.openai_model``; an
adapter is served under its own name (vLLM ``--lora-modules brand-voice=adapters/brand-voice/peft``,
a llama.cpp server model entry with ``model_alias: brand-voice`` and the GGUF LoRA). Server
down → ``BackendUnavailable`` within the connect timeout; a model the server does not list →
``ModelMissing`` naming what to run; 401 → a message about the key (never the key itself); a
stream cut mid-answer → ``BackendError`` with the text so far kept by the caller and marked.
Citation markers cannot be constrained remotely: they are validated after generation, as for
Ollama.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
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

KEY_ENV = "SUPPORTDESK_MODEL__OPENAI_API_KEY"


def serve_lines(adapter: str, peft_dir: str, gguf_lora: str, base_gguf: str) -> list[str]:
    """What registers an adapter on each kind of server, for messages and ``adapter push``."""
    return [
        f"vLLM:       vllm serve <base model> --enable-lora --lora-modules {adapter}={peft_dir}",
        (f"llama.cpp:  llama-server -m {base_gguf} --lora {gguf_lora} --alias {adapter} --parallel 4 --poll 0 "
         "--port 8000  (scripts/build_llama_server.sh builds it)"),
        (f"llama-cpp-python: python -m llama_cpp.server --config_file adapters/{adapter}/llama-server.json  (a model entry "
         f'{{"model": "{base_gguf}", "model_alias": "{adapter}", "lora_path": "{gguf_lora}"}})'),
    ]


def llama_cpp_python_config(base_gguf: Path | str, models: dict[str, Path | str | None], *, n_ctx: int = 4096,
                            threads: int = 2, host: str = "127.0.0.1", port: int = 8000,
                            api_key: str | None = None) -> dict[str, Any]:
    """A ``python -m llama_cpp.server --config_file`` config: one entry per served name (alias →
    GGUF LoRA, or None for the bare base), all on the same base GGUF. ``interrupt_requests`` is
    off: by default a second request cuts off a streaming one."""
    common = {"model": str(base_gguf), "n_ctx": n_ctx, "n_threads": threads, "n_threads_batch": threads,
              "verbose": False}
    config: dict[str, Any] = {"host": host, "port": port, "interrupt_requests": False, "models": [
        {**common, "model_alias": alias, **({"lora_path": str(lora)} if lora else {})} for alias, lora in models.items()
    ]}
    if api_key:
        config["api_key"] = api_key
    return config


class OpenAIBackend:
    """Chat through any server that speaks the OpenAI chat-completions API."""

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str | None = None, adapter: str | None = None,
                 connect_timeout: float = 2.0, read_timeout: float = 30.0) -> None:
        import openai

        self.base_url = base_url.rstrip("/")
        self.base_model = model
        self.adapter = adapter
        self.read_timeout = read_timeout
        self._served_checked = False
        # The client insists on a key; servers without auth ignore it. Never logged or shown.
        self._client = openai.OpenAI(
            base_url=self.base_url,
            api_key=api_key or "not-needed",
            # openai.Timeout: the timeout type of whichever HTTP library this openai release is built on
            # (httpx up to 3.60, httpx2 from 3.63, which refuses an httpx.Timeout).
            timeout=openai.Timeout(connect=connect_timeout, read=read_timeout, write=30.0, pool=5.0),
            max_retries=0,
        )

    @property
    def model_name(self) -> str:
        return self.adapter or self.base_model

    @property
    def adapter_name(self) -> str | None:
        return self.adapter

    def _map_error(self, exc: Exception) -> BackendError:
        import openai

        if isinstance(exc, openai.APITimeoutError):
            return BackendUnavailable(
                f"the server at {self.base_url} accepted the connection but sent nothing for {self.read_timeout:g} s: "
                "is it still loading the model, or stuck?"
            )
        if isinstance(exc, openai.APIConnectionError):
            return BackendUnavailable(
                f"no OpenAI-compatible server is answering at {self.base_url} (setting model.openai_base_url): start "
                "it, e.g. 'python -m llama_cpp.server --model BASE.gguf --port 8000' or 'vllm serve ...'"
            )
        if isinstance(exc, openai.AuthenticationError):
            return BackendError(
                f"the server at {self.base_url} refused the API key (401): set {KEY_ENV} in the environment or .env"
            )
        if isinstance(exc, openai.PermissionDeniedError):
            return BackendError(f"the server at {self.base_url} does not allow this key to use '{self.model_name}' (403)")
        if isinstance(exc, openai.NotFoundError):
            what = f"the adapter '{self.adapter}'" if self.adapter else f"the model '{self.base_model}'"
            return ModelMissing(
                f"the server at {self.base_url} does not serve {what}: register it with "
                f"'supportdesk adapter push {self.adapter or 'NAME'} --to openai' (it prints the serve line), "
                "or see 'supportdesk models list --backend openai'"
            )
        if isinstance(exc, openai.APIStatusError):
            body = safe_text(str(getattr(exc, "message", "") or exc))[:300]
            return BackendError(f"the server at {self.base_url} answered {exc.status_code}: {body}")
        return BackendError(
            f"the answer from {self.base_url} was cut off ({type(exc).__name__}: {safe_text(str(exc))[:200]})"
        )

    def _errors(self) -> tuple[type[BaseException], ...]:
        import httpx
        import openai

        transport: tuple[type[BaseException], ...] = (httpx.HTTPError,)
        try:  # newer openai releases stream through httpx2, whose errors are not httpx's
            import httpx2

            transport += (httpx2.HTTPError,)
        except ImportError:
            pass
        return (openai.OpenAIError, *transport, ValueError)

    def generate(self, messages: list[ChatMessage], options: GenerationOptions) -> Generation:
        stats = GenerationStats(backend=self.name, model=self.base_model, adapter=self.adapter)

        def produce(gen: Generation) -> Iterator[str]:
            self._check_served()
            request: dict[str, Any] = {
                "model": self.model_name,
                "messages": [m.as_dict() for m in messages],
                "stream": True,
                "stream_options": {"include_usage": True},
                "max_tokens": options.max_tokens,
                "temperature": options.temperature,
                "top_p": options.top_p,
                # Not in OpenAI's schema; vLLM and llama.cpp's server read them from the body.
                "extra_body": {"top_k": options.top_k, "repeat_penalty": options.repeat_penalty,
                               "repetition_penalty": options.repeat_penalty},
            }
            if options.seed is not None:
                request["seed"] = options.seed
            if options.stop:
                request["stop"] = list(options.stop)
            stream = None
            try:
                raw = self._client.chat.completions.with_raw_response.create(**request)
                self._check_reply(raw, "POST", "/chat/completions", ("text/event-stream", "application/json", ""))
                stream = raw.parse()
                for chunk in stream:
                    usage = getattr(chunk, "usage", None)
                    if usage is not None:
                        stats.prompt_tokens = getattr(usage, "prompt_tokens", None)
                        completion = getattr(usage, "completion_tokens", None)
                        if completion:
                            stats.backend_figures["completion_tokens"] = completion
                    for choice in getattr(chunk, "choices", None) or []:
                        text = getattr(choice.delta, "content", None) if choice.delta is not None else None
                        if text:
                            stats.tokens += 1
                            yield text
                        if choice.finish_reason == "length":
                            stats.finish_reason = "length"
                    if gen.cancelled:
                        return  # closing the response (below) makes the server stop generating
            except self._errors() as exc:
                if stats.tokens:  # the server went away (or broke the stream) mid-answer
                    raise BackendError(
                        f"the answer from {self.base_url} was cut off after {stats.tokens} pieces "
                        f"({type(exc).__name__}): the partial answer is not a complete one"
                    ) from exc
                raise self._map_error(exc) from exc
            finally:
                if stream is not None:
                    stream.close()

        return Generation(produce, stats)

    def _check_served(self) -> None:
        """Once per backend: is the model (adapter) listed? llama.cpp's server answers an unknown
        name with its default model, so an adapter that is not served would pass unnoticed."""
        if self._served_checked:
            return
        names = [info.name for info in self.list_models()]
        if names and self.model_name not in names:
            what = f"the adapter '{self.adapter}'" if self.adapter else f"the model '{self.base_model}'"
            raise ModelMissing(
                f"the server at {self.base_url} does not serve {what} (it serves: {', '.join(names)}): register it "
                f"with 'supportdesk adapter push {self.adapter or 'NAME'} --to openai' (it prints the serve line)"
            )
        self._served_checked = True

    def _check_reply(self, raw: Any, method: str, path: str, expected: tuple[str, ...]) -> None:
        """A reply that is not the API's (a web server's page, a proxy's login form: 200 text/html)
        is one clear error naming the URL and what came back, before the client tries to parse it."""
        response = raw.http_response
        ctype = (response.headers.get("content-type") or "").split(";")[0].strip().lower()
        if any(ctype == e or ctype.endswith("+json") and e == "application/json" for e in expected):
            return
        try:
            head = next(iter(response.iter_bytes()), b"")[:400]
        except Exception:  # noqa: BLE001 - only for the message
            head = b""
        finally:
            response.close()
        sample = " ".join(safe_text(head.decode("utf-8", "replace")).split())[:80]
        raise BackendError(
            f"the server at {self.base_url} does not answer in the OpenAI API: {method} {self.base_url}{path} "
            f"returned {response.status_code} {ctype or 'with no content type'}"
            + (f" ({sample!r})" if sample else "")
            + "; check model.openai_base_url (it usually ends in /v1)"
        )

    def list_models(self) -> list[ModelInfo]:
        try:
            raw = self._client.models.with_raw_response.list()
            self._check_reply(raw, "GET", "/models", ("application/json",))
            try:
                ids = [str(item.id) for item in raw.parse()]
            except (AttributeError, TypeError, KeyError) as exc:
                raise BackendError(
                    f"the server at {self.base_url} does not answer in the OpenAI API: GET {self.base_url}/models "
                    f"returned JSON that is not a model list ({type(exc).__name__}); check model.openai_base_url"
                ) from exc
        except BackendError:
            raise
        except self._errors() as exc:
            raise self._map_error(exc) from exc
        return [ModelInfo(self.name, model_id, "served") for model_id in ids]

    def serves(self, name: str) -> bool:
        return any(info.name == name for info in self.list_models())

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # no tokenizer endpoint in the API; ~4 chars per token

    def ping(self) -> bool:
        try:
            self.list_models()
        except BackendError:
            return False
        return True
