"""Readers for the public sets in ``../shared/datasets`` (see each folder's README).

Each set becomes a :class:`Dataset`: documents that are written as a throw-away KB folder (one
Markdown file per document, ``# title`` then the text, so the product's own loader and chunker
index them), and questions with the ids of the documents that answer them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.settings import PROJECT_ROOT

SHARED = PROJECT_ROOT.parent / "shared" / "datasets"


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    qid: str
    text: str
    gold: tuple[str, ...]
    """Ids of the documents that answer it (empty: nothing in the KB does)."""
    history: tuple[dict[str, str], ...] = ()
    """Earlier turns, oldest first: ``{"role": "user"|"agent", "text"}``."""
    answerability: str = "ANSWERABLE"
    """ANSWERABLE, PARTIAL, UNANSWERABLE or UNDERSPECIFIED."""
    turn: int = 1


@dataclass
class Dataset:
    name: str
    documents: list[Document]
    questions: list[Question]
    files: dict[str, str] = field(default_factory=dict)
    """KB file name → document id, filled by :meth:`write_kb`."""

    def write_kb(self, folder: Path) -> dict[str, str]:
        """One Markdown file per document; file names are positions, so any id is safe."""
        folder.mkdir(parents=True, exist_ok=True)
        self.files = {}
        for position, doc in enumerate(self.documents):
            name = f"doc{position:05d}.md"
            title = " ".join(doc.title.split())
            (folder / name).write_text(f"# {title}\n\n{doc.text.strip()}\n" if title else f"{doc.text.strip()}\n")
            self.files[name] = doc.id
        return self.files


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the public sets live in ../shared/datasets beside the project")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}, line {number}: not JSON ({exc.msg})") from exc
    return rows


def faq_retrieval(folder: Path = SHARED / "faq_retrieval") -> Dataset:
    """68 COVID-19 FAQ entries; 1,037 real user questions, each with every fully relevant entry."""
    docs = [Document(str(r["id"]), r["question"], r["answer"]) for r in _jsonl(folder / "corpus.jsonl")]
    questions = [Question(r["qid"], r["query"], tuple(map(str, r["gold_ids"]))) for r in _jsonl(folder / "queries.jsonl")]
    return Dataset("faq_retrieval", docs, questions)


def emanual(folder: Path = SHARED / "emanual", part: str = "tv") -> Dataset:
    """Samsung E-Manual sections; the questions that name a gold section."""
    docs = [Document(r["id"], r["title"], r["text"]) for r in _jsonl(folder / f"corpus_{part}.jsonl")]
    questions = [
        Question(r["qid"], r["question"], (r["gold_section_id"],))
        for r in _jsonl(folder / f"questions_{part}.jsonl")
        if r.get("gold_section_id")
    ]
    return Dataset(f"emanual_{part}", docs, questions)


def mtrag_dev(folder: Path = SHARED / "mtrag_dev") -> Dataset:
    """157 multi-turn conversations over government pages; the last user turn is the question."""
    docs = [Document(r["id"], r.get("title") or "", r["text"]) for r in _jsonl(folder / "corpus.jsonl")]
    questions = [
        Question(
            r["task_id"],
            r["question"].strip().strip('"').strip(),
            tuple(r.get("gold_passage_ids") or ()),
            tuple({"role": h["role"], "text": h["text"]} for h in r.get("history") or ()),
            r.get("answerability", "ANSWERABLE"),
            int(r.get("turn", 1)),
        )
        for r in _jsonl(folder / "tasks.jsonl")
    ]
    return Dataset("mtrag_dev", docs, questions)


READERS = {"faq_retrieval": faq_retrieval, "emanual_tv": emanual, "mtrag_dev": mtrag_dev}
