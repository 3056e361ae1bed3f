"""Resumable adapter training: the LoRA weights and the optimizer's moments, saved as tensors.

A build that is paused (the app quits, SIGTERM) or killed resumes from its last checkpoint
instead of starting over. Nothing here is a pickle (``torch.save`` is one): tensors go to
safetensors, the step and loss to JSON. A checkpoint made for other data, another base or
other hyper-parameters (its ``fingerprint``) is ignored, never half-applied.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supportdesk.private import private_dir, private_tree

WEIGHTS = "checkpoint.safetensors"
STATE = "checkpoint.json"


class BuildPaused(Exception):
    """Training stopped on request after saving a checkpoint; the next build resumes from it."""

    def __init__(self, step: int, total: int, folder: Path) -> None:
        super().__init__(f"paused at step {step}/{total}; checkpoint in {folder}")
        self.step, self.total, self.folder = step, total, folder


@dataclass
class Checkpointer:
    """Where one build keeps its checkpoint, and how often it writes it."""

    folder: Path
    fingerprint: str
    every: int = 10

    def save(self, params: list[tuple[str, Any]], optimizer: Any, step: int, loss: float) -> None:
        from safetensors.torch import save_file

        tensors: dict[str, Any] = {}
        for index, (name, param) in enumerate(params):
            tensors[f"param.{name}"] = param.detach().cpu().contiguous()
            for key, value in optimizer.state.get(param, {}).items():
                tensors[f"optim.{index}.{key}"] = value.detach().cpu().reshape(value.shape).contiguous()
        staging = self.folder.with_name(self.folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        private_dir(staging)
        save_file(tensors, str(staging / WEIGHTS))
        (staging / STATE).write_text(json.dumps({"step": step, "loss": loss, "fingerprint": self.fingerprint}))
        private_tree(staging)
        old = self.folder.with_name(self.folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if self.folder.exists():
            os.replace(self.folder, old)
        os.replace(staging, self.folder)
        shutil.rmtree(old, ignore_errors=True)

    def restore(self, params: list[tuple[str, Any]], optimizer: Any) -> tuple[int, float] | None:
        """Load the checkpoint into the model and optimizer; ``None`` when there is none that fits."""
        from safetensors.torch import load_file

        try:
            state = json.loads((self.folder / STATE).read_text())
            if state.get("fingerprint") != self.fingerprint:
                return None
            tensors = load_file(str(self.folder / WEIGHTS))
        except (OSError, ValueError):
            return None
        names = {f"param.{name}" for name, _ in params}
        if not names <= set(tensors):
            return None
        for index, (name, param) in enumerate(params):
            param.data.copy_(tensors[f"param.{name}"])
            prefix = f"optim.{index}."
            moments = {k[len(prefix):]: v.to(param.device) for k, v in tensors.items() if k.startswith(prefix)}
            if moments:
                optimizer.state[param] = moments
        return int(state["step"]), float(state.get("loss", float("nan")))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
