"""What this CPU can do fast, and which paths supportdesk chose because of it.

Machines of the same kind differ: some have native bfloat16 (AVX512-BF16, AMX), many cloud
CPUs have AVX2 only. Nothing assumes the fast path; ``describe()`` is printed by
``supportdesk config``, ``kb stats`` and every benchmark header.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

RELEVANT_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU", frozenset()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return model, frozenset(flags)


def has_fast_bf16() -> bool:
    """bfloat16 matmuls are ~4.7x faster than fp32 with AVX512-BF16/AMX, and emulated (slow) elsewhere."""
    flags = _cpuinfo()[1]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def describe() -> str:
    """One line: the CPU, its relevant flags, and the paths chosen for it."""
    model, flags = _cpuinfo()
    shown = " ".join(f for f in RELEVANT_FLAGS if f in flags) or "no AVX2/AVX-512"
    if has_fast_bf16():
        chosen = "embedder bfloat16, adapter training bfloat16 autocast"
    else:
        chosen = "embedder float32, adapter training float32 (1 epoch for the sample)"
    return f"{model}, {os.cpu_count()} cores; flags: {shown} → {chosen}"
