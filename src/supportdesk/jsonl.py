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


def parse_lines(text: str, where: object) -> list[tuple[int, Any]]:
    """(line number, value) for every non-blank line of JSONL ``text``; ValueError naming
    "``where``, line N" for a line that is not JSON (files a user hands the CLI)."""
    values = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{where}, line {number}: not JSON ({exc.msg})") from exc
    return values


def require_text(path: Path, number: int, row: dict[str, Any], keys: tuple[str, ...]) -> None:
    for key in keys:
        if not isinstance(row.get(key), str):
            raise ValueError(f"{path}:{number}: field '{key}' is missing or not text")  # noqa: TRY004 - as above
