"""One index generation ready to serve: its searcher, manifest and the values in effect for it."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from langchain_core.documents import Document

from supportdesk.kb.aliases import Aliases, find_aliases
from supportdesk.kb.calibration import Calibration
from supportdesk.kb.chunking import Chunk
from supportdesk.kb.lexical import BM25Index
from supportdesk.kb.questions import QuestionVectors
from supportdesk.kb.search import Searcher
from supportdesk.kb.values import ValuesInEffect


@dataclass(frozen=True)
class Snapshot:
    """Everything one generation needs to answer searches; never mutated once built."""

    searcher: Searcher
    manifest: dict[str, Any]
    generation: str | None
    loaded_at: float
    values: ValuesInEffect
    """The fusion weight, hand-off and router values this generation serves (kb/values.py)."""

    @property
    def chunk_count(self) -> int:
        return len(self.searcher.chunks)

    @functools.cached_property
    def calibration(self) -> Calibration | None:
        return manifest_calibration(self.manifest)

    @functools.cached_property
    def titles(self) -> tuple[str, ...]:
        return tuple({c.source: c.title for c in self.searcher.chunks if c.title}.values())

    @functools.cached_property
    def aliases(self) -> Aliases:
        """Product names and codes that are the same thing, as this generation's docs say."""
        return find_aliases(c.text for c in self.searcher.chunks)

    def vectors(self) -> np.ndarray:
        """Every chunk's vector, in ``searcher.chunks`` order (read back from FAISS)."""
        return searcher_vectors(self.searcher)


def manifest_calibration(manifest: dict[str, Any]) -> Calibration | None:
    return Calibration.from_json(manifest.get("calibration"))


def searcher_vectors(searcher: Searcher) -> np.ndarray:
    """Every chunk's vector, in ``searcher.chunks`` order (read back from FAISS)."""
    index = searcher.store.index
    dim = index.d
    out = np.zeros((len(searcher.chunks), dim), dtype=np.float32)
    if index.ntotal:
        stored = index.reconstruct_n(0, index.ntotal)
        for row, chunk in enumerate(searcher.chunks):
            pos = searcher._faiss_row_of.get(chunk.id)
            if pos is not None:
                out[row] = stored[pos]
    return out


def new_searcher(store: Any) -> Searcher:
    """A searcher over a LangChain FAISS store: its chunks in (source, position) order and their BM25."""
    docs = [store.docstore.search(cid) for cid in store.index_to_docstore_id.values()]
    chunks = sorted(
        (Chunk.from_document(doc) for doc in docs if isinstance(doc, Document)),
        key=lambda c: (c.source, c.position),
    )
    return Searcher(store, chunks, BM25Index([c.indexed_text for c in chunks]))


def with_questions(searcher: Searcher, manifest: dict[str, Any]) -> Searcher:
    """The searcher with the generation's stored question-heading vectors, when it has any."""
    if searcher.questions is None and manifest.get("questions"):
        searcher.questions = QuestionVectors.for_chunks(searcher.chunks, QuestionVectors.stored(manifest["questions"]))
    return searcher


def make_snapshot(searcher: Searcher, manifest: dict[str, Any], generation: str | None,
                  values: ValuesInEffect) -> Snapshot:
    return Snapshot(with_questions(searcher, manifest), manifest, generation, time.time(), values)
