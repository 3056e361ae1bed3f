"""Files of approved answers: CSV or JSONL with ``question``, ``answer``, optional ``id`` and ``sources``.

Every row is checked before anything is written (``read_rows`` raises ``ValueError`` naming the
file, the line and the field), so an import lands whole or not at all. Rows that share an ``id``
are wordings of one entry: their questions are all kept, and their answers must agree. ``sources``
is a JSON list (of names, or of citation objects) or, in a CSV, names separated by ``;``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from supportdesk.history.approved import ImportRow
from supportdesk.jsonl import parse_lines

FIELDS = ("question", "answer", "id", "sources")


def _sources(value: Any, where: str) -> list[dict[str, Any]]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: field 'sources' is not a JSON list ({exc.msg})") from exc
        else:
            value = [part.strip() for part in text.split(";") if part.strip()]
    if not isinstance(value, list):
        raise ValueError(f"{where}: field 'sources' must be a list")  # noqa: TRY004 - a message for the user
    out = []
    for item in value:
        if isinstance(item, str) and item.strip():
            out.append({"source": item.strip(), "title": "", "heading": "", "cited": True})
        elif isinstance(item, dict) and isinstance(item.get("source"), str):
            out.append({**item, "cited": True})
        else:
            raise ValueError(f"{where}: field 'sources' holds {item!r}: give file names or objects with 'source'")
    return out


def _text(row: dict[str, Any], name: str, where: str, required: bool = True) -> str | None:
    value = row.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ValueError(f"{where}: field '{name}' is missing or empty")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{where}: field '{name}' must be text")  # noqa: TRY004 - a message for the user
    return " ".join(str(value).split()) if name != "answer" else str(value).strip()


def _records(path: Path, text: str) -> list[tuple[int, dict[str, Any]]]:
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        records = []
        for number, row in parse_lines(text, path):
            if not isinstance(row, dict):
                raise ValueError(f"{path}, line {number}: expected an object with 'question' and 'answer'")  # noqa: TRY004
            records.append((number, row))
        return records
    if path.suffix.lower() != ".csv":
        raise ValueError(f"{path}: give a .csv or .jsonl file (columns: question, answer, optional id, sources)")
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = [name for name in ("question", "answer") if name not in header]
    if missing:
        raise ValueError(f"{path}, line 1: the header has no column {', '.join(repr(m) for m in missing)}")
    records = []
    for row in reader:
        if None in row:
            raise ValueError(f"{path}, line {reader.line_num}: more values than the header has columns")
        records.append((reader.line_num, dict(row)))
    return records


def read_rows(path: Path) -> list[ImportRow]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    rows: list[ImportRow] = []
    by_key: dict[str, tuple[ImportRow, int]] = {}
    for number, record in _records(path, text):
        where = f"{path}, line {number}"
        question = _text(record, "question", where)
        answer = _text(record, "answer", where)
        key = _text(record, "id", where, required=False)
        sources = _sources(record.get("sources"), where)
        assert question is not None and answer is not None
        if key is not None and key in by_key:
            first, first_line = by_key[key]
            if first.answer != answer:
                raise ValueError(f"{where}: field 'answer' differs from line {first_line}'s for id {key!r}")
            if question != first.question and question not in first.questions:
                first.questions.append(question)
            continue
        row = ImportRow(question, answer, key, sources)
        rows.append(row)
        if key is not None:
            by_key[key] = (row, number)
    if not rows:
        raise ValueError(f"{path}: no rows (columns: question, answer, optional id, sources)")
    return rows
