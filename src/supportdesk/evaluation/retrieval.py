"""Retrieval quality on a public set: hit@1/5 and MRR@10 for dense, BM25 and the hybrids.

The set's documents become a throw-away KB built by the product's own pipeline (loader,
chunker, embedder, FAISS, BM25, self-calibration) with default settings; ranked chunks are
folded into documents (first occurrence wins) and scored against the gold documents.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from supportdesk.evaluation.datasets import Dataset, Question
from supportdesk.kb.search import SearchHit


@dataclass
class RetrievalRow:
    name: str
    n: int
    hit1: float
    hit5: float
    mrr: float

    def to_json(self) -> dict[str, Any]:
        return {"system": self.name, "n": self.n, "hit@1": round(self.hit1, 4), "hit@5": round(self.hit5, 4),
                "mrr": round(self.mrr, 4)}


def rank_documents(hits: list[SearchHit], files: dict[str, str]) -> list[str]:
    ranked: list[str] = []
    for hit in hits:
        doc = files.get(hit.chunk.source)
        if doc is not None and doc not in ranked:
            ranked.append(doc)
    return ranked


def first_gold_rank(ranked: list[str], gold: tuple[str, ...]) -> int | None:
    for position, doc in enumerate(ranked, start=1):
        if doc in gold:
            return position
    return None


def score(name: str, ranks: list[int | None]) -> RetrievalRow:
    n = max(len(ranks), 1)
    return RetrievalRow(
        name,
        len(ranks),
        sum(r == 1 for r in ranks) / n,
        sum(r is not None and r <= 5 for r in ranks) / n,
        sum(1 / r for r in ranks if r is not None and r <= 10) / n,
    )


def build_dataset_kb(dataset: Dataset, workdir: Path, progress: Callable[[Any], None] | None = None, **overrides: Any):
    """Index the set's documents with the product's defaults (plus ``overrides``)."""
    from supportdesk.kb import KnowledgeBase
    from supportdesk.settings import Settings

    kb_dir = workdir / "kb"
    dataset.write_kb(kb_dir)
    settings = Settings(kb_dir=kb_dir, data_dir=workdir / "data", **overrides)
    kb = KnowledgeBase(settings)
    report = kb.reload(progress=progress)
    if not report.ok:
        raise RuntimeError(f"{dataset.name}: the KB build failed: {report.error}")
    return kb


def evaluate_retrieval(
    dataset: Dataset,
    questions: list[Question] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[RetrievalRow], dict[str, Any]]:
    """Dense, BM25, hybrid at the default weight and hybrid as the product serves this KB (the weight
    the generation calibrated for itself, or the default it kept; question headings in both hybrids)."""
    from supportdesk.settings import RetrievalSettings

    questions = [q for q in (questions or dataset.questions) if q.gold]
    default_weight = RetrievalSettings().default_dense_weight
    with tempfile.TemporaryDirectory(prefix="supportdesk-eval-") as tmp:
        kb = build_dataset_kb(dataset, Path(tmp))
        snap = kb.snapshot()
        assert snap is not None
        calibration = kb.calibration()
        depth = max(kb.settings.retrieval.candidates, 10)
        systems: dict[str, dict[str, Any]] = {
            "dense": {"mode": "dense"},
            "bm25": {"mode": "bm25"},
            f"hybrid, default weight {default_weight}": {"mode": "hybrid", "dense_weight": default_weight},
        }
        weight, source = kb.dense_weight(snap)
        kept = "chose" if source == "self-calibrated" else "kept the default"
        systems[f"hybrid, self-calibrated ({kept} weight {weight})"] = {"mode": "hybrid"}
        ranks: dict[str, list[int | None]] = {name: [] for name in systems}
        total = len(questions) * len(systems)
        done = 0
        for q in questions:
            for name, options in systems.items():
                result = kb.search(q.text, k=depth, **options)
                ranks[name].append(first_gold_rank(rank_documents(result.hits, dataset.files), q.gold))
                done += 1
            if progress is not None:
                progress(done, total)
        info = {
            "documents": len(dataset.documents),
            "chunks": snap.chunk_count,
            "calibration": calibration.to_json() if calibration else None,
        }
    return [score(name, r) for name, r in ranks.items()], info
