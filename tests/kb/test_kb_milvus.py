"""The knowledge base in Milvus (retrieval.store = "milvus"): a real Milvus server (milvus-lite,
Milvus's gRPC protocol) on a free loopback port, started and stopped by the fixture.

The server must start: without it these tests fail with the reason (milvus-lite is a
dependency). ``SUPPORTDESK_TEST_SKIP_MILVUS=1`` skips them where it cannot run.
"""

from __future__ import annotations

import json
import os
import time

import pytest
from fixtures.milvus_server import MilvusServer, MilvusUnavailableForTests

from supportdesk.kb import KnowledgeBase
from supportdesk.settings import RetrievalSettings


@pytest.fixture
def milvus():
    server = MilvusServer()
    try:
        server.start()
    except MilvusUnavailableForTests as exc:
        server.stop()
        if os.environ.get("SUPPORTDESK_TEST_SKIP_MILVUS") == "1":
            pytest.skip(f"Milvus not started: {exc}")
        pytest.fail(f"Milvus (milvus-lite) could not be started for these tests: {exc}", pytrace=False)
    yield server
    server.stop()


def _settings(settings_factory, kb_dir, uri, **retrieval):
    cfg = RetrievalSettings(store="milvus", milvus_uri=uri, milvus_collection="kbtest", milvus_timeout_s=5,
                             self_calibrate=False, **retrieval)
    return settings_factory(kb_dir, retrieval=cfg)


def test_milvus_serves_the_same_hits_with_the_same_scores(milvus, settings_factory, small_kb, hash_embedder):
    settings = _settings(settings_factory, small_kb, milvus.uri)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    report = kb.reload()
    assert report.ok, report.error
    snap = kb.snapshot()
    collection = snap.manifest["milvus"]["collection"]
    assert snap.searcher.remote is not None and collection.startswith(f"kbtest_{kb.store.owner_tag()}_g")
    client = kb.milvus.client()
    assert client.describe_alias("kbtest")["collection_name"] == collection
    assert client.get_collection_stats(collection)["row_count"] == snap.chunk_count
    local = snap.searcher.with_remote(None)
    for query in ("How many days do I have to return a router?", "no internet connection lights"):
        vector = kb.embedder.embed_query(query)
        import numpy as np

        options = {"k": 5, "candidates": 40, "dense_weight": 0.5, "rrf_k": 60}
        dense_m = snap.searcher.search(query, np.asarray(vector, dtype=np.float32), mode="dense", **options)
        dense_f = local.search(query, np.asarray(vector, dtype=np.float32), mode="dense", **options)
        assert [h.chunk.id for h in dense_m] == [h.chunk.id for h in dense_f]
        assert [round(h.score, 4) for h in dense_m] == [round(h.score, 4) for h in dense_f]
        hybrid = kb.search(query)
        assert hybrid.hits and snap.searcher.remote_error is None
        for hit in hybrid.hits:  # every hit's score is its cosine to the query, whoever found it
            assert abs(hit.score - local._cosine(np.asarray(vector, dtype=np.float32),
                                                 local._row_of[hit.chunk.id])) < 1e-4
    bm25 = kb.search("refund", mode="bm25")
    assert bm25.hits and all("refund" in h.chunk.indexed_text.lower() for h in bm25.hits[:2])
    # Milvus's BM25 function scores the terms our BM25 scores (the chunks go in analysed the same
    # way): the same ranking, for plain words, stemmed forms and hyphenated terms alike.
    for query in ("refunds for returned routers", "Wi-Fi password", "blinking amber light"):
        theirs = [cid for cid, _ in snap.searcher.remote.lexical(query, 5)]
        ours = [snap.searcher.chunks[row].id for row, _ in snap.searcher.bm25.top(query, 5)]
        assert theirs and theirs[0] == ours[0] and set(theirs) == set(ours), query
    # A fresh process loads the generation and searches the same collection.
    again = KnowledgeBase(settings, embedder=hash_embedder)
    assert again.snapshot().searcher.remote.collection == collection
    stats = again.stats()
    assert stats.vector_store.startswith(f"milvus {collection} at {milvus.uri}")


def test_reload_is_incremental_and_switches_generations_whole(milvus, settings_factory, small_kb, hash_embedder):
    settings = _settings(settings_factory, small_kb, milvus.uri)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.reload().ok
    old = kb.snapshot()
    old_collection = old.manifest["milvus"]["collection"]
    embedded_before = len(hash_embedder.embedded)
    (small_kb / "policies" / "loyalty.md").write_text("# Loyalty points\n\nEvery purchase earns ten loyalty points.\n",
                                                      encoding="utf-8")
    (small_kb / "faq.md").unlink()
    report = kb.reload()
    assert report.ok, report.error
    assert report.added == ["policies/loyalty.md"] and report.removed == ["faq.md"]
    assert len(hash_embedder.embedded) - embedded_before == report.chunks_added  # only the new file was embedded
    new = kb.snapshot()
    new_collection = new.manifest["milvus"]["collection"]
    assert new_collection != old_collection
    client = kb.milvus.client()
    assert client.describe_alias("kbtest")["collection_name"] == new_collection
    assert client.get_collection_stats(new_collection)["row_count"] == new.chunk_count
    # A search that started on the old generation still sees only the old one (its own collection).
    old_hits = old.searcher.remote.lexical("loyalty points", 5)
    assert all(cid in old.searcher._row_of and not cid.startswith("policies/loyalty.md") for cid, _ in old_hits)
    assert [h.chunk.source for h in kb.search("loyalty points", mode="bm25").hits][:1] == ["policies/loyalty.md"]
    assert all(h.chunk.source != "faq.md" for h in kb.search("How long is the warranty?").hits)
    # Another server's collection under the same alias is never dropped by this one.
    foreign = KnowledgeBase(settings.model_copy(update={"data_dir": settings.data_dir.parent / "other-data"}),
                            embedder=hash_embedder)
    assert foreign.reload().ok
    foreign_collection = foreign.snapshot().manifest["milvus"]["collection"]
    assert foreign.store.owner_tag() != kb.store.owner_tag()
    # The generation before the previous one is dropped; the previous one stays for searches in flight.
    (small_kb / "policies" / "loyalty.md").write_text("# Loyalty points\n\nTwenty points per purchase.\n",
                                                      encoding="utf-8")
    assert kb.reload().ok
    names = set(client.list_collections())
    assert old_collection not in names and new_collection in names and foreign_collection in names


def test_milvus_down_during_reload_keeps_the_old_generation_serving(milvus, settings_factory, small_kb,
                                                                    hash_embedder, cli, monkeypatch):
    settings = _settings(settings_factory, small_kb, milvus.uri)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.reload().ok
    serving = kb.snapshot()
    milvus.stop_process()
    (small_kb / "policies" / "loyalty.md").write_text("# Loyalty points\n\nTen points per dollar.\n", encoding="utf-8")
    report = kb.reload()
    assert not report.ok and "Milvus" in report.error and milvus.uri in report.error
    assert "previous index still serving" in report.error
    assert kb.snapshot() is serving and kb.store.current_dir().name == serving.generation
    # Searches go on from this process's copy of the same generation, and say why.
    hits = kb.search("How many days do I have to return a router?").hits
    assert hits and "Milvus" in (serving.searcher.remote_error or "")
    milvus.start()
    kb.milvus.retry_after_s = 0.2  # (5 s by default: meanwhile each search goes local at once)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if kb.search("return a router").hits and serving.searcher.remote_error is None:
            break
        time.sleep(0.3)
    assert serving.searcher.remote_error is None  # back on Milvus by itself
    report = kb.reload()
    assert report.ok and report.added == ["policies/loyalty.md"]
    # The same commands and --json, through the settings.
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__STORE", "milvus")
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__MILVUS_URI", milvus.uri)
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__MILVUS_COLLECTION", "kbcli")
    built = cli("kb", "build")
    assert built.exit_code == 0, built.output
    found = cli("kb", "search", "return a router", "--json")
    assert found.exit_code == 0 and json.loads(found.output)["hits"]
    stats = json.loads(cli("kb", "stats", "--json").output)
    assert stats["vector_store"].startswith("milvus kbcli_")


_BUILD_WHILE_MILVUS_GOES_DOWN = """
import os, signal, socket, sys, time
sys.path.insert(0, os.environ["TESTS_DIR"])
import langchain_milvus
from conftest import HashEmbeddings
import supportdesk.kb.index as index_module
from supportdesk.cli import main

index_module.create_embedder = lambda *a, **k: HashEmbeddings()
write = langchain_milvus.Milvus.add_embeddings

def milvus_goes_down_then_write(self, *args, **kwargs):  # connected, collection not yet written
    os.kill(int(os.environ["MILVUS_PID"]), signal.SIGTERM)
    port = int(os.environ["MILVUS_PORT"])
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            time.sleep(0.05)
        except OSError:
            break
    return write(self, *args, **kwargs)

langchain_milvus.Milvus.add_embeddings = milvus_goes_down_then_write
sys.argv = ["supportdesk", *sys.argv[1:]]
main()
"""


def test_milvus_down_during_a_build_prints_only_the_clean_error(milvus, settings_factory, small_kb, tmp_path):
    """Issue 30 item 16: pymilvus's own stderr handlers printed its reconnection warnings and RPC
    errors, tracebacks included (~150 lines), before the one-line error. A real process, real stderr."""
    import subprocess
    import sys
    from pathlib import Path

    settings_factory(small_kb)  # no developer settings leak in
    driver = tmp_path / "driver.py"
    driver.write_text(_BUILD_WHILE_MILVUS_GOES_DOWN, encoding="utf-8")
    env = {**os.environ, "TESTS_DIR": str(Path(__file__).resolve().parents[1]), "MILVUS_PID": str(milvus._process.pid),
           "MILVUS_PORT": str(milvus.port), "SUPPORTDESK_RETRIEVAL__STORE": "milvus",
           "SUPPORTDESK_RETRIEVAL__MILVUS_URI": milvus.uri, "SUPPORTDESK_RETRIEVAL__MILVUS_COLLECTION": "kbdown",
           "SUPPORTDESK_RETRIEVAL__MILVUS_TIMEOUT_S": "3", "SUPPORTDESK_RETRIEVAL__SELF_CALIBRATE": "false"}
    done = subprocess.run([sys.executable, str(driver), "--data-dir", str(tmp_path / "data"), "--kb", str(small_kb),
                           "kb", "build"], check=False, env=env, capture_output=True, text=True, timeout=300,
                          cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("error: reload failed") and milvus.uri in lines[0]
