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


class AdapterFormatError(ValueError):
    """A file that is not a GGUF LoRA adapter for the given base model."""


_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_STRING, _ARRAY = 8, 9


def read_gguf_header(path: Path) -> tuple[dict[str, object], dict[str, list[int]]]:
    """String metadata and tensor shapes (ggml order) of a GGUF file, without its data.

    ``gguf.GGUFReader`` decodes every metadata array (a 49k-token vocabulary: ~2 s here);
    this reads only what validation needs and skips the rest by length.
    """
    import struct

    with path.open("rb") as handle:
        def read(fmt: str):
            size = struct.calcsize(fmt)
            data = handle.read(size)
            if len(data) != size:
                raise AdapterFormatError(f"{path} is truncated")
            return struct.unpack("<" + fmt, data)[0]

        def read_string() -> str:
            length = read("Q")
            if length > 1 << 24:
                raise AdapterFormatError(f"{path} has an implausible string length")
            return handle.read(length).decode("utf-8", errors="replace")

        def skip_value(kind: int) -> None:
            if kind == _STRING:
                handle.seek(read("Q"), 1)
            elif kind == _ARRAY:
                item, count = read("I"), read("Q")
                if item in _SCALAR_SIZES:
                    handle.seek(_SCALAR_SIZES[item] * count, 1)
                else:
                    for _ in range(count):
                        skip_value(item)
            elif kind in _SCALAR_SIZES:
                handle.seek(_SCALAR_SIZES[kind], 1)
            else:
                raise AdapterFormatError(f"{path} has an unknown metadata type {kind}")

        if handle.read(4) != b"GGUF":
            raise AdapterFormatError(f"{path} is not a GGUF file (bad magic)")
        version = read("I")
        if version < 2:
            raise AdapterFormatError(f"{path} uses GGUF version {version}; 2 or later is needed")
        n_tensors, n_kv = read("Q"), read("Q")
        meta: dict[str, object] = {}
        for _ in range(n_kv):
            key, kind = read_string(), read("I")
            if kind == _STRING:
                meta[key] = read_string()
            else:
                skip_value(kind)
        shapes: dict[str, list[int]] = {}
        for _ in range(n_tensors):
            name = read_string()
            dims = [read("Q") for _ in range(read("I"))]
            read("I")  # ggml type
            read("Q")  # data offset
            shapes[name] = dims
    return meta, shapes


def validate_gguf_lora(adapter: Path, base: Path) -> int:
    """Check ``adapter`` against ``base`` before llama.cpp sees it; returns the tensor pairs.

    llama-cpp-python only *logs* a failed adapter load and carries on with a null adapter,
    which crashes the process at the first generation, so we refuse bad files up front.
    """
    try:
        meta, shapes = read_gguf_header(adapter)
        base_meta, base_shapes = read_gguf_header(base)
    except OSError as exc:
        raise AdapterFormatError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    if meta.get("general.type") != "adapter" or meta.get("adapter.type") != "lora":
        raise AdapterFormatError(f"{adapter} is a GGUF file but not a LoRA adapter")
    arch, base_arch = meta.get("general.architecture"), base_meta.get("general.architecture")
    if arch != base_arch:
        raise AdapterFormatError(f"{adapter} is for architecture '{arch}', the base model is '{base_arch}'")
    halves: dict[str, dict[str, list[int]]] = {}
    for tensor_name, shape in shapes.items():
        name, _, half = tensor_name.rpartition(".lora_")
        if half not in ("a", "b"):
            raise AdapterFormatError(f"{adapter}: unexpected tensor {tensor_name}")
        halves.setdefault(name, {})[half] = shape
    for name, ab in halves.items():
        target = base_shapes.get(name)
        if target is None:
            raise AdapterFormatError(f"{adapter}: {name} does not exist in the base model {base.name}")
        if set(ab) != {"a", "b"}:
            raise AdapterFormatError(f"{adapter}: {name} has only one of lora_a / lora_b")
        a, b = ab["a"], ab["b"]
        if a[0] != target[0] or b[1] != target[1] or a[1] != b[0]:
            raise AdapterFormatError(
                f"{adapter}: {name} LoRA shapes a={a} b={b} do not fit the base tensor {target}"
            )
    if not halves:
        raise AdapterFormatError(f"{adapter} holds no LoRA tensors")
    return len(halves)
