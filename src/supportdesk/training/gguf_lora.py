"""Write a PEFT LoRA as a GGUF LoRA adapter that llama.cpp (and Ollama) can load.

Uses the ``gguf`` package's writer and tensor-name map, the same pieces llama.cpp's own
``convert_lora_to_gguf.py`` uses, so no llama.cpp checkout is needed:

* names: ``model.layers.N.self_attn.q_proj`` → ``blk.N.attn_q.weight`` + ``.lora_a`` / ``.lora_b``;
* shapes: ``lora_a`` is A as (r, in), ``lora_b`` is B as (out, r), as llama.cpp expects;
* llama's q/k projections are stored row-permuted in GGUF (for its RoPE layout), so B of
  q_proj and k_proj gets the same permutation (A is untouched: it maps the input side);
* metadata: ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def permute_rows(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k permutation (convert_hf_to_gguf.LlamaModel.permute) on the output rows."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def pair_peft_tensors(state: Mapping[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{hf_module: (A, B)} from a PEFT ``adapter_model.safetensors`` state dict."""
    halves: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        match = _PEFT_KEY.match(key)
        if match is None:
            raise ValueError(f"not a LoRA tensor name: {key}")
        halves.setdefault(match["module"], {})[match["ab"]] = np.asarray(value, dtype=np.float32)
    pairs = {}
    for module, ab in halves.items():
        if set(ab) != {"A", "B"}:
            raise ValueError(f"LoRA module {module} lacks its {'A' if 'A' not in ab else 'B'} matrix")
        pairs[module] = (ab["A"], ab["B"])
    return pairs


def write_gguf_lora(
    path: Path,
    pairs: Mapping[str, tuple[np.ndarray, np.ndarray]],
    *,
    alpha: float,
    n_layers: int,
    n_head: int,
    n_head_kv: int,
    arch: str = "llama",
    name: str = "supportdesk adapter",
) -> None:
    import gguf

    model_arch = {"llama": gguf.MODEL_ARCH.LLAMA}.get(arch)
    if model_arch is None:
        raise ValueError(f"architecture '{arch}' is not supported for GGUF LoRA export (only llama)")
    names = gguf.get_tensor_name_map(model_arch, n_layers)
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_name(name)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
    for module, (a, b) in sorted(pairs.items()):
        target = names.get_name(f"{module}.weight", try_suffixes=(".weight",))
        if target is None:
            raise ValueError(f"no GGUF tensor for {module}")
        if a.shape[0] != b.shape[1]:
            raise ValueError(f"{module}: rank mismatch, A {a.shape} vs B {b.shape}")
        if module.endswith("q_proj"):
            b = permute_rows(b, n_head)
        elif module.endswith("k_proj"):
            b = permute_rows(b, n_head_kv)
        writer.add_tensor(f"{target}.lora_a", np.ascontiguousarray(a, dtype=np.float32))
        writer.add_tensor(f"{target}.lora_b", np.ascontiguousarray(b, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
