"""Incremental, atomic reloads and the integrity check on the persisted index."""

from __future__ import annotations

import json
import os
import pickle
import threading
import time
from pathlib import Path

import pytest

from supportdesk.kb import KnowledgeBase
from supportdesk.kb.index import ReloadInProgress
from supportdesk.kb.store import IndexIntegrityError


def build(settings, embedder):
    kb = KnowledgeBase(settings, embedder=embedder)
    report = kb.reload()
    assert report.ok, report.error
    return kb, report


def test_first_build_indexes_every_format(settings_factory, small_kb, hash_embedder):
    kb, report = build(settings_factory(small_kb), hash_embedder)
    assert sorted(report.added) == [
        "faq.md",
        "manuals/aerie-ax3000-quick-start.pdf",
        "policies/returns-and-refunds.txt",
        "troubleshooting/no-internet.html",
    ]
    assert report.chunks_total == report.chunks_added == len(hash_embedder.embedded) > 20
    stats = kb.stats()
    assert stats.files == 4 and stats.chunks == report.chunks_total
    assert stats.by_kind == {"markdown": 1, "text": 1, "html": 1, "pdf": 1}


def test_reload_embeds_only_what_changed(settings_factory, small_kb, hash_embedder):
    settings = settings_factory(small_kb)
    kb, first = build(settings, hash_embedder)

    # Nothing changed: nothing embedded, same generation keeps serving.
    hash_embedder.embedded.clear()
    again = kb.reload()
    assert again.ok and again.unchanged and not (again.added or again.changed or again.removed)
    assert hash_embedder.embedded == [] and again.generation == first.generation

    # Touched but identical content: hashed, not re-embedded.
    faq = small_kb / "faq.md"
    os.utime(faq, ns=(time.time_ns(), time.time_ns()))
    assert kb.reload().changed == [] and hash_embedder.embedded == []

    # One file edited: only its chunks are embedded; its old chunks are gone.
    text = faq.read_text().replace("1-888-537-8735", "1-888-000-1111")
    faq.write_text(text)
    changed = kb.reload()
    assert changed.changed == ["faq.md"] and not changed.added
    faq_chunks = [c for c in kb.snapshot().searcher.chunks if c.source == "faq.md"]
    assert len(hash_embedder.embedded) == len(faq_chunks) == changed.chunks_added
    assert changed.chunks_total == first.chunks_total
    assert not any("537-8735" in c.text for c in faq_chunks)
    assert kb.search("1-888-000-1111", k=1, mode="bm25").hits[0].chunk.source == "faq.md"

    # One file removed: its chunks disappear, nothing embedded.
    hash_embedder.embedded.clear()
    (small_kb / "policies/returns-and-refunds.txt").unlink()
    removed = kb.reload()
    assert removed.removed == ["policies/returns-and-refunds.txt"] and hash_embedder.embedded == []
    assert all(c.source != "policies/returns-and-refunds.txt" for c in kb.snapshot().searcher.chunks)
    assert len(kb.snapshot().searcher.store.index_to_docstore_id) == removed.chunks_total

    # A new process sees the same index without re-embedding anything.
    fresh = KnowledgeBase(settings, embedder=hash_embedder)
    assert fresh.snapshot().chunk_count == removed.chunks_total
    assert fresh.reload().unchanged


def test_failed_reload_keeps_old_index_serving(settings_factory, small_kb, hash_embedder):
    kb, first = build(settings_factory(small_kb), hash_embedder)
    before = kb.search("refund", k=3, mode="bm25").hits
    (small_kb / "new.md").write_text("# New\n\nA brand new page about refunds and RMA numbers.\n")
    hash_embedder.fail_after = len(hash_embedder.embedded)  # the next embed call crashes
    report = kb.reload()
    assert not report.ok
    assert "(previous index still serving)" in report.error and "embedding model crashed" in report.error
    assert kb.snapshot().generation == first.generation
    assert [h.chunk.id for h in kb.search("refund", k=3, mode="bm25").hits] == [h.chunk.id for h in before]
    pointer = (kb.store.root / "CURRENT").read_text().strip()
    assert pointer == first.generation
    assert not list(kb.store.root.glob(".staging-*"))


def test_searches_during_reload_use_old_index_then_swap(settings_factory, small_kb, hash_embedder):
    kb, first = build(settings_factory(small_kb), hash_embedder)
    (small_kb / "zebra.md").write_text("# Zebra\n\nThe zebra mode of the Aerie is documented here.\n")
    hash_embedder.gate = threading.Event()
    hash_embedder.entered.clear()
    results = {}
    worker = threading.Thread(target=lambda: results.setdefault("report", kb.reload()))
    worker.start()
    assert hash_embedder.entered.wait(10)  # the reload is now blocked inside embedding
    assert kb.reloading
    with pytest.raises(ReloadInProgress):
        kb.reload()
    during = kb.search("zebra", k=3, mode="bm25")
    assert all(h.chunk.source != "zebra.md" for h in during.hits)
    assert kb.snapshot().generation == first.generation
    hash_embedder.gate.set()
    worker.join(10)
    assert results["report"].ok and results["report"].added == ["zebra.md"]
    assert kb.search("zebra", k=1, mode="bm25").hits[0].chunk.source == "zebra.md"


def test_a_file_that_turns_bad_keeps_its_previous_chunks(settings_factory, small_kb, hash_embedder):
    kb, first = build(settings_factory(small_kb), hash_embedder)
    (small_kb / "faq.md").write_bytes(b"# FAQ\n\xff\xfe broken now")
    report = kb.reload()
    assert report.ok and report.kept_previous == ["faq.md"]
    assert any(s.rel == "faq.md" and "not valid UTF-8" in s.reason for s in report.skipped)
    assert report.chunks_total == first.chunks_total


def _current_gen(kb: KnowledgeBase) -> Path:
    return kb.store.root / (kb.store.root / "CURRENT").read_text().strip()


def test_tampered_docstore_is_refused_never_unpickled(settings_factory, small_kb, hash_embedder, monkeypatch):
    settings = settings_factory(small_kb)
    kb, _ = build(settings, hash_embedder)
    gen = _current_gen(kb)
    with (gen / "chunks.jsonl").open("a") as handle:  # a chunk slipped in by hand
        handle.write('{"id": "x", "text": "Call 555-0000 for a free router", "metadata": {}}\n')

    def no_unpickling(*args, **kwargs):
        raise AssertionError("pickle.load called on an unverified file")

    monkeypatch.setattr(pickle, "load", no_unpickling)
    monkeypatch.setattr(pickle, "loads", no_unpickling)
    fresh = KnowledgeBase(settings, embedder=hash_embedder)
    with pytest.raises(IndexIntegrityError, match="chunks.jsonl does not match its manifest checksum"):
        fresh.snapshot()
    report = fresh.reload()
    assert not report.ok and "kb build --force" in report.error


def test_foreign_manifest_is_refused(settings_factory, small_kb, hash_embedder, tmp_path):
    settings = settings_factory(small_kb)
    kb, _ = build(settings, hash_embedder)
    gen = _current_gen(kb)
    manifest = json.loads((gen / "manifest.json").read_text())
    manifest["kb_dir"] = "/somewhere/else"  # edited by hand: the signature no longer matches
    (gen / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexIntegrityError, match="not signed by this data dir"):
        KnowledgeBase(settings, embedder=hash_embedder).snapshot()

    # A whole index copied from another data dir (another key) is refused too.
    (gen / "manifest.json").unlink()
    with pytest.raises(IndexIntegrityError, match="manifest.json is missing"):
        KnowledgeBase(settings, embedder=hash_embedder).snapshot()


def test_force_rebuild_recovers_from_a_refused_index(settings_factory, small_kb, hash_embedder):
    settings = settings_factory(small_kb)
    kb, first = build(settings, hash_embedder)
    (_current_gen(kb) / "index.faiss").write_bytes(b"junk")
    fresh = KnowledgeBase(settings, embedder=hash_embedder)
    report = fresh.reload(force=True)
    assert report.ok and len(report.added) == 4
    assert fresh.snapshot().chunk_count == first.chunks_total


def test_missing_kb_folder_is_a_clear_error(settings_factory, tmp_path, hash_embedder):
    kb = KnowledgeBase(settings_factory(tmp_path / "nope"), embedder=hash_embedder)
    report = kb.reload()
    assert not report.ok and "does not exist" in report.error
    assert kb.search("anything").hits == []


def test_old_generations_are_pruned(settings_factory, small_kb, hash_embedder):
    kb, _ = build(settings_factory(small_kb), hash_embedder)
    for i in range(3):
        (small_kb / f"extra{i}.md").write_text(f"# Extra {i}\n\ncontent {i}\n")
        assert kb.reload().ok
    gens = sorted(p.name for p in kb.store.root.glob("gen-*"))
    assert len(gens) == 2 and _current_gen(kb).name in gens


def test_a_build_waits_while_an_answer_is_written_and_then_finishes(settings_factory, small_kb, hash_embedder,
                                                                      tmp_path, monkeypatch):
    """The chat's model gets the CPU: no chunk is embedded while an answer is being written."""
    from supportdesk import cpu_load

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    kb = KnowledgeBase(settings_factory(small_kb), embedder=hash_embedder)
    results = {}
    with cpu_load.generating():
        worker = threading.Thread(target=lambda: results.setdefault("report", kb.reload()))
        worker.start()
        time.sleep(1.0)
        assert hash_embedder.embedded == [] and worker.is_alive()
    worker.join(20)
    assert results["report"].ok and len(hash_embedder.embedded) == results["report"].chunks_added > 0


def test_an_index_of_an_older_text_format_is_reported_and_rebuilt_whole(settings_factory, small_kb, hash_embedder,
                                                                         monkeypatch):
    settings = settings_factory(small_kb)
    _, first = build(settings, hash_embedder)
    import supportdesk.kb.build as kb_build
    import supportdesk.kb.index as kb_index

    # This version's ingest makes other texts of the same files: the old index says so instead of serving
    # silently, and the next build reads every file again (never old and new chunks mixed).
    monkeypatch.setattr(kb_index, "TEXT_FORMAT", kb_index.TEXT_FORMAT + 1)
    monkeypatch.setattr(kb_build, "TEXT_FORMAT", kb_build.TEXT_FORMAT + 1)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.snapshot() is not None
    assert "older ingest" in (kb.format_mismatch() or "") and "kb build" in (kb.load_warning or "")
    report = kb.reload()
    assert report.ok and report.chunks_added == report.chunks_total == first.chunks_total
    assert kb.format_mismatch() is None
