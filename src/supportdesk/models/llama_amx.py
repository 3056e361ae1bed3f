"""llama.cpp without its AMX kernels.

A llama.cpp built with ``-march=native`` on a CPU with AMX (Intel Sapphire Rapids and later)
routes the weights through ggml's AMX buffer type, and on such a machine here every
generation with SmolLM2's Q4_1 weights died with a general protection fault inside
``ggml_backend_amx_mul_mat``. AMX only comes in through llama.cpp's "extra buffer types", so
on a CPU that has AMX the model is loaded with them off (the plain AVX-512 kernels run
instead); elsewhere nothing changes.

    python -m supportdesk.models.llama_amx --config_file server.json   # llama_cpp.server, same rule
"""

from __future__ import annotations

import contextlib
import runpy
import threading
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path

_PATCH_LOCK = threading.Lock()


@cache
def cpu_has_amx(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(flag.startswith("amx") for flag in flags)


def _patch_params() -> Callable[[], None]:
    """Make llama-cpp-python's default model params load without extra buffer types; returns the undo."""
    import llama_cpp.llama_cpp as raw

    original = raw.llama_model_default_params

    def params():
        value = original()
        value.use_extra_bufts = False
        return value

    raw.llama_model_default_params = params

    def undo() -> None:
        raw.llama_model_default_params = original

    return undo


@contextlib.contextmanager
def without_amx(active: bool | None = None) -> Iterator[None]:
    """Within this block, ``llama_cpp.Llama(...)`` loads its model without extra buffer types
    (so without AMX) when the CPU has AMX, or when ``active`` says so."""
    if not (cpu_has_amx() if active is None else active):
        yield
        return
    with _PATCH_LOCK:
        undo = _patch_params()
        try:
            yield
        finally:
            undo()


def serve() -> None:
    """``python -m llama_cpp.server`` with the same rule (its arguments are passed through)."""
    if cpu_has_amx():
        _patch_params()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    serve()
