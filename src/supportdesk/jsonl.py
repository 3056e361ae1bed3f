"""Our own labelled sets are JSONL: read them with errors that name the file and line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; ValueError naming ``path:line`` otherwise."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from exc
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: not a JSON object")  # noqa: TRY004 - bad data, reported as ValueError with file:line
        rows.append((number, row))
    return rows


def require_text(path: Path, number: int, row: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if not isinstance(row.get(key), str):
            raise ValueError(f"{path}:{number}: field '{key}' is missing or not text")  # noqa: TRY004 - as above
