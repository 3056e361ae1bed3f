"""Is a GGUF file a LoRA adapter for this base model? Checked before llama.cpp sees it.

llama-cpp-python only *logs* a failed adapter load and carries on with a null adapter, which
crashes the process at the first generation. The writer of these files is
``training/gguf_lora.py``; this module only reads their headers.
"""

from __future__ import annotations

from pathlib import Path


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
