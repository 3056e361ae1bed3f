"""Hybrid search over one index snapshot: dense (FAISS) and lexical (BM25), fused.

Every hit carries its cosine similarity to the query in [0, 1] (``score``), whichever
retriever found it, so scores mean the same thing in every mode; ``fused`` is the fusion
score that ordered the list, and ``dense_rank`` / ``bm25_rank`` show who proposed it.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from supportdesk.kb.chunking import Chunk
from supportdesk.kb.lexical import BM25Index, is_filler, query_coverage, question_phrase_terms, surface_words
from supportdesk.kb.questions import QuestionVectors
from supportdesk.kb.store import cosine_relevance

Mode = Literal["hybrid", "dense", "bm25"]
_REMOTE_CALLS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="supportdesk-remote-search")


@dataclass
class SearchHit:
    chunk: Chunk
    score: float
    fused: float
    dense_rank: int | None = None
    bm25_rank: int | None = None
    bm25_score: float | None = None
    coverage: float = 0.0
    """Share of the query's idf-weighted terms this chunk holds (title, heading and text)."""
    matched: frozenset[str] = frozenset()
    """The query's content terms this chunk holds."""

    def to_json(self) -> dict[str, Any]:
        chunk = self.chunk
        return {
            "source": chunk.source,
            "title": chunk.title,
            "heading": chunk.heading,
            "page": chunk.page,
            "chunk_id": chunk.id,
            "score": round(self.score, 4),
            "fused": round(self.fused, 6),
            "dense_rank": self.dense_rank,
            "bm25_rank": self.bm25_rank,
            "coverage": round(self.coverage, 4),
            "text": chunk.text,
        }


@dataclass
class SearchTimings:
    embed_ms: float = 0.0
    search_ms: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Evidence:
    """What a set of hits says about answering the query from them (see kb/answerability.py)."""

    best_score: float
    """Best cosine similarity of a hit to the query."""
    coverage: float
    """Best share of the query's idf-weighted content terms that one hit holds."""
    missing: float
    """idf of the most specific query term that no hit holds, over the largest idf possible (0: none missing)."""
    missing_term: str | None = None

    def signals(self) -> tuple[float, float, float]:
        return (self.best_score, self.coverage, self.missing)


@dataclass
class SearchResult:
    query: str
    hits: list[SearchHit]
    timings: SearchTimings = field(default_factory=SearchTimings)
    vector: np.ndarray | None = None
    term_weights: dict[str, float] = field(default_factory=dict)
    """The query's content terms and their idf in this index."""
    unseen_idf: float = 1.0

    @property
    def best_score(self) -> float:
        """The best cosine similarity among the hits (0 when there are none)."""
        return max((hit.score for hit in self.hits), default=0.0)

    def evidence(self, top: int | None = None) -> Evidence:
        """The answerability signals of the first ``top`` hits: the chunks a grounded prompt shows."""
        hits = self.hits[:top] if top else self.hits
        matched = frozenset().union(*(h.matched for h in hits))
        asked_as = question_phrase_terms(self.query)
        absent = {term: w for term, w in self.term_weights.items()
                  if term not in matched and not is_filler(term) and term not in asked_as}
        term = max(absent, key=absent.__getitem__) if absent else None
        return Evidence(
            best_score=max((h.score for h in hits), default=0.0),
            coverage=max((h.coverage for h in hits), default=0.0),
            missing=absent[term] / self.unseen_idf if term and self.unseen_idf > 0 else 0.0,
            missing_term=surface_words(self.query).get(term, term) if term else None,
        )


def rrf_fuse(
    rankings: list[tuple[list[int], float]], k: int
) -> dict[int, float]:
    """Weighted reciprocal-rank fusion: sum of weight / (k + rank) over the rankings."""
    fused: dict[int, float] = {}
    for rows, weight in rankings:
        for rank, row in enumerate(rows, start=1):
            fused[row] = fused.get(row, 0.0) + weight / (k + rank)
    return fused


def convex_fuse(dense: list[tuple[int, float]], lexical: list[tuple[int, float]], dense_weight: float) -> dict[int, float]:
    """Weighted sum of each retriever's scores, each divided by its best score for this query.

    Measured on the E-Manual (see bench/retrieval.py): unlike rank fusion, this keeps the
    *margin* by which BM25 is sure of an exact-term match, so the fusion does not lose to its
    better member when one retriever is much stronger than the other.
    """
    fused: dict[int, float] = {}
    for ranking, weight in ((lexical, 1.0 - dense_weight), (dense, dense_weight)):
        if not ranking:
            continue
        top = max(ranking[0][1], 1e-9)
        for row, score in ranking:
            fused[row] = fused.get(row, 0.0) + weight * score / top
    return fused


class Searcher:
    """Search over one immutable snapshot (FAISS store + chunk table + BM25)."""

    def __init__(self, store: Any, chunks: list[Chunk], bm25: BM25Index, remote: Any = None) -> None:
        self.store = store
        self.chunks = chunks
        self.bm25 = bm25
        self.remote = remote
        """A store that ranks this same generation elsewhere (``kb/milvus.py``); None: FAISS and BM25 here."""
        self.remote_error: str | None = None
        """Why the last search could not use ``remote`` (it then used this process's copy)."""
        self.questions: QuestionVectors | None = None
        """Vectors of the KB's question headings (``kb/questions.py``); set when the generation has any."""
        self._row_of = {chunk.id: row for row, chunk in enumerate(chunks)}
        self._faiss_row_of = {cid: pos for pos, cid in store.index_to_docstore_id.items()}

    def with_remote(self, remote: Any) -> Searcher:
        """The same generation, ranked by ``remote`` (shares chunks, BM25 statistics and vectors)."""
        twin = copy.copy(self)
        twin.remote = remote
        twin.remote_error = None
        return twin

    def _rankings(self, query: str, vector: np.ndarray | None, n: int,
                  mode: Mode) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
        """(dense, lexical) rankings of rows, best first: from the remote store, or from here."""
        if self.remote is not None:
            from supportdesk.kb.milvus import MilvusUnavailable

            try:
                # Both rankings are network calls: asked side by side, a hybrid search waits for the slower only.
                pending_lexical = _REMOTE_CALLS.submit(self.remote.lexical, query, n) if mode != "dense" else None
                remote_dense = self.remote.dense(vector, n) if vector is not None and mode != "bm25" else []
                remote_lexical = pending_lexical.result() if pending_lexical is not None else []
                dense = [(self._row_of[cid], cosine_relevance(score)) for cid, score in remote_dense
                         if cid in self._row_of]
                lexical = [(self._row_of[cid], score) for cid, score in remote_lexical if cid in self._row_of]
                self.remote_error = None
                return dense, lexical
            except MilvusUnavailable as exc:
                self.remote_error = f"{exc}; searching this process's copy of the same generation meanwhile"
        dense = self._dense(vector, n) if vector is not None and mode != "bm25" else []
        lexical = self.bm25.top(query, n) if mode != "dense" else []
        return dense, lexical

    def _dense(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        if self.store.index.ntotal == 0:
            return []
        scores, positions = self.store.index.search(vector.reshape(1, -1), min(k, self.store.index.ntotal))
        out = []
        for pos, score in zip(positions[0], scores[0], strict=True):
            if pos < 0:
                continue
            row = self._row_of.get(self.store.index_to_docstore_id[int(pos)])
            if row is not None:
                out.append((row, cosine_relevance(score)))
        return out

    def with_questions(self, dense: list[tuple[int, float]], vector: np.ndarray, n: int,
                       weight: float) -> list[tuple[int, float]]:
        """The dense ranking with each chunk under a question heading scored by
        ``(1 - weight) * cos(chunk) + weight * cos(its question)``; chunks whose question is among
        the ``n`` closest join the candidates, so an answer worded unlike the question is found."""
        questions = self.questions
        if questions is None or weight <= 0.0:
            return dense
        closeness = questions.matrix @ vector
        scores = dict(dense)
        for j in np.argsort(-closeness, kind="stable")[:n]:
            for row in questions.rows_of[int(j)]:
                if row not in scores:
                    scores[row] = self._cosine(vector, row)
        mixed = []
        for row, cos in scores.items():
            j = int(questions.question_at[row])
            mixed.append((row, cos if j < 0 else (1.0 - weight) * cos + weight * max(0.0, float(closeness[j]))))
        mixed.sort(key=lambda pair: (-pair[1], pair[0]))
        return mixed[:n]

    def _cosine(self, vector: np.ndarray, row: int) -> float:
        pos = self._faiss_row_of.get(self.chunks[row].id)
        if pos is None:
            return 0.0
        return cosine_relevance(float(np.dot(self.store.index.reconstruct(pos), vector)))

    def search(
        self,
        query: str,
        vector: np.ndarray | None,
        k: int,
        mode: Mode,
        candidates: int,
        dense_weight: float,
        rrf_k: int,
        fusion: str = "convex",
        question_weight: float = 0.0,
    ) -> list[SearchHit]:
        dense, lexical = self._rankings(query, vector, max(candidates, k), mode)
        dense_cos = dict(dense)  # a hit's score stays its own cosine, whatever ranked it
        if mode == "hybrid" and vector is not None and question_weight > 0.0:
            dense = self.with_questions(dense, vector, max(candidates, k), question_weight)
        dense_rank = {row: rank for rank, (row, _) in enumerate(dense, start=1)}
        bm25_rank = {row: rank for rank, (row, _) in enumerate(lexical, start=1)}
        bm25_score = dict(lexical)
        if mode == "dense":
            fused = {row: cos for row, cos in dense}
        elif mode == "bm25":
            top = lexical[0][1] if lexical else 1.0
            fused = {row: score / top for row, score in lexical}
        elif fusion == "rrf":
            fused = rrf_fuse(
                [([r for r, _ in dense], dense_weight), ([r for r, _ in lexical], 1.0 - dense_weight)], rrf_k
            )
        else:
            fused = convex_fuse(dense, lexical, dense_weight)
        order = sorted(fused, key=lambda row: (-fused[row], row))[:k]
        hits = []
        for row in order:
            if row in dense_cos:
                cos = dense_cos[row]
            elif vector is not None:
                cos = self._cosine(vector, row)
            else:
                cos = 0.0
            hits.append(
                SearchHit(
                    chunk=self.chunks[row],
                    score=cos,
                    fused=fused[row],
                    dense_rank=dense_rank.get(row),
                    bm25_rank=bm25_rank.get(row),
                    bm25_score=bm25_score.get(row),
                )
            )
        return hits

    def add_coverage(self, query: str, hits: list[SearchHit]) -> dict[str, float]:
        """Fill each hit's query-term coverage (~0.1 ms for a handful of hits); return the
        query's term weights."""
        weights = self.bm25.term_weights(query)
        rows = [self._row_of[hit.chunk.id] for hit in hits]  # BM25 rows follow self.chunks
        for hit, matched in zip(hits, self.bm25.matched_terms(rows, weights), strict=True):
            hit.matched = matched
            hit.coverage = query_coverage(weights, set(matched))
        return weights


def timed_search(searcher: Searcher, embed: Any, query: str, **options: Any) -> SearchResult:
    """Embed and search, timing each stage (BM25-only still embeds: hits show their cosine)."""
    timings = SearchTimings()
    start = time.perf_counter()
    vector = np.asarray(embed(query), dtype=np.float32)
    timings.embed_ms = (time.perf_counter() - start) * 1000
    start = time.perf_counter()
    hits = searcher.search(query, vector, **options)
    weights = searcher.add_coverage(query, hits)
    timings.search_ms = (time.perf_counter() - start) * 1000
    return SearchResult(query, hits, timings, vector, weights, searcher.bm25.unseen_idf)


def search_to_json(query: str, result: SearchResult) -> dict[str, Any]:
    """A search: the same JSON from ``kb search --json``, the team server and ``Session.search`` (``wire``)."""
    return {"query": query, "hits": [dict(hit.to_json(), rank=i) for i, hit in enumerate(result.hits, start=1)],
            "timings_ms": result.timings.as_dict()}
