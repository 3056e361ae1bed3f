"""Any ``ChatBackend`` as a LangChain ``BaseChatModel``, so LangChain chains can use it.

Streaming is native (``_stream`` yields our chunks); the final chunk carries our
``GenerationStats`` in ``generation_info`` and token counts in ``usage_metadata``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import ConfigDict

from supportdesk.models.base import ChatBackend, ChatMessage, GenerationOptions

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_chat_messages(messages: list[BaseMessage]) -> list[ChatMessage]:
    out = []
    for message in messages:
        role = _ROLES.get(message.type)
        if role is None:
            raise ValueError(f"unsupported message type '{message.type}' (system, human and ai are supported)")
        content = message.content if isinstance(message.content, str) else str(message.content)
        out.append(ChatMessage(role, content))  # type: ignore[arg-type]
    return out


class SupportdeskChatModel(BaseChatModel):
    """LangChain chat model over the embedded or Ollama backend."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Any  # ChatBackend; Any keeps pydantic from validating the protocol
    options: GenerationOptions = GenerationOptions()

    @property
    def _llm_type(self) -> str:
        return f"supportdesk-{self.backend.name}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"backend": self.backend.name, "model": self.backend.model_name, "adapter": self.backend.adapter_name}

    def _options(self, stop: list[str] | None, kwargs: dict[str, Any]) -> GenerationOptions:
        values = {**self.options.__dict__, **{k: v for k, v in kwargs.items() if k in self.options.__dict__}}
        if stop:
            values["stop"] = tuple(stop)
        return GenerationOptions(**values)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        backend: ChatBackend = self.backend
        generation = backend.generate(to_chat_messages(messages), self._options(stop, kwargs))
        for piece in generation:
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk
        stats = generation.stats
        usage = {
            "input_tokens": stats.prompt_tokens or 0,
            "output_tokens": stats.tokens,
            "total_tokens": (stats.prompt_tokens or 0) + stats.tokens,
        }
        yield ChatGenerationChunk(
            message=AIMessageChunk(content="", usage_metadata=usage),  # type: ignore[arg-type]
            generation_info={"stats": stats.as_dict(), "finish_reason": stats.finish_reason},
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = ""
        info: dict[str, Any] = {}
        for chunk in self._stream(messages, stop, run_manager, **kwargs):
            text += chunk.text
            info = chunk.generation_info or info
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text), generation_info=info)])
