"""What this CPU can do fast, and which paths supportdesk chose because of it.

Machines of the same kind differ: some have native bfloat16 (AVX512-BF16, AMX), many cloud
CPUs have AVX2 only. Nothing assumes the fast path; ``describe()`` is printed by
``supportdesk config``, ``kb stats`` and every benchmark header.
"""

from __future__ import annotations

import fnmatch
import os
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from supportdesk.settings import EmbeddingSettings

RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
HIDDEN_FLAGS_ENV = "SUPPORTDESK_CPU_FLAGS_HIDDEN"
"""Flag patterns to treat as absent (``avx512* amx* avx_vnni``): set by ``bench/ --as-avx2`` together
with a CPUID mask, so the paths chosen are those of an AVX2-only CPU."""


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU", frozenset()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    hidden = os.environ.get(HIDDEN_FLAGS_ENV, "").split()
    return model, frozenset(f for f in flags if not any(fnmatch.fnmatch(f, pattern) for pattern in hidden))


def has_fast_bf16() -> bool:
    """bfloat16 matmuls are ~4.7x faster than fp32 with AVX512-BF16/AMX, and emulated (slow) elsewhere."""
    flags = _cpuinfo()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def resolve_runtime(runtime: str) -> str:
    """The embedder's runtime: 'auto' → torch bfloat16 where the CPU has native bf16 (fastest index
    build there: 84 vs 67 chunks/s), else ONNX Runtime's fused float32 graph (same vectors, faster
    than torch fp32)."""
    if runtime != "auto":
        return runtime
    if has_fast_bf16() or not onnxruntime_available():
        return "torch"
    return "onnx"


def resolve_precision(precision: str, runtime: str = "torch") -> str:
    """The embedder's precision: 'auto' → float32 on ONNX Runtime (int8 is opt-in: faster, rankings
    move a little); on torch bfloat16 where the CPU has it natively, float32 elsewhere."""
    if precision != "auto":
        return precision
    if runtime == "onnx":
        return "float32"
    return "bfloat16" if has_fast_bf16() else "float32"


def chosen_path(settings: EmbeddingSettings) -> tuple[str, str]:
    """(runtime, precision) the embedding settings resolve to on this machine, without loading anything."""
    runtime = resolve_runtime(settings.runtime)
    return runtime, resolve_precision(settings.precision, runtime)


def describe(embedding: EmbeddingSettings | None = None) -> str:
    """One line: the CPU, its relevant flags, and the paths chosen for it."""
    from supportdesk.settings import EmbeddingSettings

    model, flags = _cpuinfo()
    shown = " ".join(f for f in RELEVANT_FLAGS if f in flags) or "no AVX2/AVX-512"
    if os.environ.get(HIDDEN_FLAGS_ENV):
        shown += f" (hidden: {os.environ[HIDDEN_FLAGS_ENV]})"
    embedding = embedding or EmbeddingSettings()
    if embedding.provider == "ollama":
        embedder = f"embedder ollama:{embedding.ollama_model}"
    else:
        runtime, precision = chosen_path(embedding)
        embedder = f"embedder {runtime} {precision}"
    if has_fast_bf16():
        training = "adapter training bfloat16 autocast"
    else:
        training = "adapter training float32 (1 epoch for the sample)"
    return f"{model}, {os.cpu_count()} cores; flags: {shown} → {embedder}, {training}"
