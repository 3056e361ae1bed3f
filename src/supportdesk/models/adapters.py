"""LoRA adapters on disk: ``<adapters_dir>/<name>/`` with a manifest and a GGUF LoRA file.

The folder is written by the adapter build (PEFT safetensors + ``adapter.gguf`` +
``manifest.json``); the embedded backend loads ``adapter.gguf`` with llama.cpp and the
Ollama backend registers it with the server. Which adapter is *active* is runtime state,
kept in the data dir (``active_adapter``), so activating never edits the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.models.base import ModelMissing
from supportdesk.private import private_dir, write_private_text
from supportdesk.sanitize import check_plain_name

GGUF_NAME = "adapter.gguf"
MANIFEST_NAME = "manifest.json"
ACTIVE_FILE = "active_adapter"


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def gguf(self) -> Path:
        return self.path / GGUF_NAME


def _read(path: Path) -> AdapterInfo | None:
    if not (path / GGUF_NAME).is_file():
        return None
    try:
        manifest = json.loads((path / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    if not isinstance(manifest, dict):
        manifest = {}
    return AdapterInfo(path.name, path, manifest)


def list_adapters(adapters_dir: Path) -> list[AdapterInfo]:
    if not adapters_dir.is_dir():
        return []
    found = (_read(p) for p in sorted(adapters_dir.iterdir()) if p.is_dir() and not p.name.startswith("."))
    return [a for a in found if a is not None]


def find_adapter(adapters_dir: Path, name: str) -> AdapterInfo:
    try:
        check_plain_name(name, "adapter name")
    except ValueError as exc:
        raise ModelMissing(str(exc)) from exc
    info = _read(adapters_dir / name)
    if info is None:
        known = ", ".join(a.name for a in list_adapters(adapters_dir)) or "none"
        raise ModelMissing(
            f"no adapter '{name}' in {adapters_dir} (available: {known}); build one with 'supportdesk adapter build'"
        )
    return info


def read_active(data_dir: Path) -> str | None:
    try:
        name = (data_dir / ACTIVE_FILE).read_text().strip()
    except OSError:
        return None
    return name or None


class StateWriteError(OSError):
    """The data dir cannot take the choice (it is a file, read-only, full): nothing changed."""


def write_active(data_dir: Path, name: str | None) -> None:
    tmp = data_dir / f".{ACTIVE_FILE}.tmp{os.getpid()}"
    try:
        private_dir(data_dir)
        write_private_text(tmp, (name or "") + "\n")
        os.replace(tmp, data_dir / ACTIVE_FILE)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise StateWriteError(
            f"cannot record the active adapter in the data dir {data_dir}: {exc.strerror or exc} "
            "(setting data_dir, --data-dir or SUPPORTDESK_DATA_DIR); the previous choice is unchanged"
        ) from exc


def verify_adapter(adapter: AdapterInfo, base_gguf: Path) -> None:
    """Refuse an adapter whose file is not what its build wrote, or not a LoRA for this base.

    The build records ``adapter_sha256`` in the manifest; a file swapped or damaged since is
    caught here. The GGUF header is then checked against the base (llama.cpp only logs a bad
    adapter and crashes later).
    """
    from supportdesk.checksum import sha256_file
    from supportdesk.models.gguf_check import AdapterFormatError, validate_gguf_lora

    expected = adapter.manifest.get("adapter_sha256")
    if expected:
        try:
            actual = sha256_file(adapter.gguf)
        except OSError as exc:
            raise ModelMissing(f"cannot read {adapter.gguf}: {exc.strerror or exc}") from exc
        if actual != expected:
            raise ModelMissing(
                f"{adapter.gguf} does not match the sha256 its build recorded in {adapter.path / MANIFEST_NAME}: "
                "the file changed since it was built; rebuild it with 'supportdesk adapter build --replace'"
            )
    try:
        validate_gguf_lora(adapter.gguf, base_gguf)
    except AdapterFormatError as exc:
        raise ModelMissing(f"could not load the adapter '{adapter.name}': it cannot be used ({exc})") from exc
