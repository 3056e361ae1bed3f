"""On a CPU with AMX, llama.cpp loads the model without extra buffer types (its AMX kernels
crashed here); elsewhere nothing changes."""

from __future__ import annotations

from pathlib import Path

from supportdesk.models.llama_amx import cpu_has_amx, without_amx


def test_amx_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    with_amx = tmp_path / "amx"
    with_amx.write_text("processor : 0\nflags : fpu avx2 avx512f amx_bf16 amx_tile amx_int8\n")
    plain = tmp_path / "plain"
    plain.write_text("processor : 0\nflags : fpu avx2 fma\n")
    assert cpu_has_amx.__wrapped__(with_amx) and not cpu_has_amx.__wrapped__(plain)
    assert not cpu_has_amx.__wrapped__(tmp_path / "missing")


def test_extra_buffer_types_are_off_only_inside_the_block() -> None:
    import llama_cpp.llama_cpp as raw

    assert raw.llama_model_default_params().use_extra_bufts
    with without_amx(active=True):
        assert not raw.llama_model_default_params().use_extra_bufts
    assert raw.llama_model_default_params().use_extra_bufts
    with without_amx(active=False):
        assert raw.llama_model_default_params().use_extra_bufts
