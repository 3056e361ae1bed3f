"""LoRA adapters on disk: ``<adapters_dir>/<name>/`` with a manifest and a GGUF LoRA file.

The folder is written by the adapter build (PEFT safetensors + ``adapter.gguf`` +
``manifest.json``); the embedded backend loads ``adapter.gguf`` with llama.cpp and the
Ollama backend registers it with the server. Which adapter is *active* is runtime state,
kept in the data dir (``active_adapter``), so activating never edits the checkout.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.models.base import ModelMissing

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
        manifest = json.loads((path / MANIFEST_NAME).read_text())
    except (OSError, ValueError):
        manifest = {}
    return AdapterInfo(path.name, path, manifest)


def list_adapters(adapters_dir: Path) -> list[AdapterInfo]:
    if not adapters_dir.is_dir():
        return []
    found = (_read(p) for p in sorted(adapters_dir.iterdir()) if p.is_dir() and not p.name.startswith("."))
    return [a for a in found if a is not None]


def find_adapter(adapters_dir: Path, name: str) -> AdapterInfo:
    info = _read(adapters_dir / name) if name and "/" not in name else None
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


def write_active(data_dir: Path, name: str | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{ACTIVE_FILE}.tmp{os.getpid()}"
    tmp.write_text((name or "") + "\n")
    os.replace(tmp, data_dir / ACTIVE_FILE)
