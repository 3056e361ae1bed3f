"""FAISS beside Milvus (retrieval.store): E-Manual TV quality and query latency, 1k and 50k chunks.

    .venv/bin/python bench/vector_stores.py            # ~5 minutes on 2 cores
    .venv/bin/python bench/vector_stores.py --scale 0  # quality only

Needs ``../shared/datasets/emanual``. The Milvus server is milvus-lite (Milvus's own gRPC
protocol, the client code a Milvus cluster gets) on a free loopback port, started here.
Quality: the E-Manual TV sections as one KB, built twice by the product's pipeline (same
chunks, same MiniLM vectors): once served by FAISS + our BM25, once by Milvus (dense COSINE +
Milvus's BM25 function), both fused by the same code with the same weight; hit@1/5 and MRR@10
over the TV questions, per mode. Latency: p50/p95 of ``kb.search`` (embedding included).
Scale: 50,000 chunks (the TV chunks repeated, with synthetic unit vectors) published to a
Milvus collection and held by FAISS: p50 of one search in each store, embedding excluded.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from retrieval import DATASET, quality, write_sections

from supportdesk.kb import KnowledgeBase
from supportdesk.settings import RetrievalSettings, Settings


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def scale_run(kb: KnowledgeBase, n: int, queries: int = 50) -> dict[str, float]:
    import numpy as np

    from supportdesk.kb.chunking import Chunk
    from supportdesk.kb.lexical import BM25Index
    from supportdesk.kb.milvus import MilvusRankings
    from supportdesk.kb.search import Searcher
    from supportdesk.kb.store import new_vectorstore

    rng = np.random.default_rng(7)
    base = kb.snapshot().searcher.chunks
    vectors = rng.standard_normal((n, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    chunks = [Chunk(f"synthetic-{i}", base[i % len(base)].text, f"s{i % 5000}.md", base[i % len(base)].title,
                    base[i % len(base)].heading, None, i) for i in range(n)]
    store = new_vectorstore(kb.embedder, 384)
    store.add_embeddings([(c.text, v) for c, v in zip(chunks, vectors.tolist(), strict=True)],
                         metadatas=[c.metadata() for c in chunks], ids=[c.id for c in chunks])
    local = Searcher(store, chunks, BM25Index([c.indexed_text for c in chunks]))
    started = time.perf_counter()
    collection = kb.milvus.publish(chunks, vectors)
    publish_s = time.perf_counter() - started
    remote = local.with_remote(MilvusRankings(kb.milvus, collection))
    cfg = kb.settings.retrieval
    out: dict[str, float] = {"publish_s": publish_s}
    texts = [c.text[:120] for c in base[:queries]]
    qvecs = [np.asarray(kb.embedder.embed_query(t), dtype=np.float32) for t in texts]
    for label, searcher in (("faiss", local), ("milvus", remote)):
        for mode in ("dense", "bm25", "hybrid"):
            times = []
            for text, q in zip(texts, qvecs, strict=True):
                t0 = time.perf_counter()
                searcher.search(text, q, k=cfg.top_k, mode=mode, candidates=cfg.candidates,  # type: ignore[arg-type]
                                dense_weight=kb.dense_weight()[0], rrf_k=cfg.rrf_k, fusion=cfg.fusion)
                times.append((time.perf_counter() - t0) * 1000)
            out[f"{label}_{mode}_p50_ms"] = statistics.median(times)
    kb.milvus._drop_quietly(collection)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=50_000, help="Chunks for the scale run (0: skip).")
    args = parser.parse_args()
    if not (DATASET / "corpus_tv.jsonl").exists():
        sys.exit(f"needs the E-Manual dataset at {DATASET}")
    from fixtures.milvus_server import MilvusServer

    from supportdesk.cpu import describe

    server = MilvusServer().start()
    rows = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            tmp = Path(folder)
            names = write_sections(DATASET / "corpus_tv.jsonl", tmp / "kb")
            kbs = {}
            for store in ("faiss", "milvus"):
                retrieval = RetrievalSettings(store=store, milvus_uri=server.uri, milvus_collection="emanual_tv",
                                              self_calibrate=False)
                settings = Settings(kb_dir=tmp / "kb", data_dir=tmp / f"data-{store}", retrieval=retrieval)
                kb = KnowledgeBase(settings)
                kb.embedder_info  # noqa: B018 - load the model before timing the build
                started = time.perf_counter()
                report = kb.reload()
                if not report.ok:
                    sys.exit(f"{store} build failed: {report.error}")
                kbs[store] = kb
                scores = quality(kb, DATASET / "questions_tv.jsonl", names, ["dense", "bm25", "hybrid"])
                rows.append((store, report.chunks_total, time.perf_counter() - started, scores))
            scale = scale_run(kbs["milvus"], args.scale) if args.scale else None
    finally:
        server.stop()

    print(f"\nFAISS vs Milvus (milvus-lite server on loopback) — CPU: {describe()}")
    print("| store | chunks | build s | mode | hit@1 | hit@5 | MRR@10 | search p50 / p95 ms (with embedding) |")
    print("|---|---|---|---|---|---|---|---|")
    for store, chunks, build_s, scores in rows:
        for mode, s in scores.items():
            print(f"| {store} | {chunks} | {build_s:.1f} | {mode} | {s['hit@1']:.3f} | {s['hit@5']:.3f} | {s['mrr']:.3f} "
                  f"| {s['p50_ms']:.1f} / {s['p95_ms']:.1f} |")
    faiss_h, milvus_h = rows[0][3]["hybrid"], rows[1][3]["hybrid"]
    print(f"\nhybrid, Milvus - FAISS: hit@5 {milvus_h['hit@5'] - faiss_h['hit@5']:+.3f}, "
          f"MRR {milvus_h['mrr'] - faiss_h['mrr']:+.3f} (target: within 0.02)")
    if scale:
        print(f"\n{args.scale:,} chunks (synthetic vectors), one search without the embedding; "
              f"publishing them to Milvus took {scale['publish_s']:.0f} s")
        print("| store | dense p50 ms | bm25 p50 ms | hybrid p50 ms |")
        print("|---|---|---|---|")
        for store in ("faiss", "milvus"):
            print(f"| {store} | {scale[f'{store}_dense_p50_ms']:.1f} | {scale[f'{store}_bm25_p50_ms']:.1f} "
                  f"| {scale[f'{store}_hybrid_p50_ms']:.1f} |")


if __name__ == "__main__":
    main()
