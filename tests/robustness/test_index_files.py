"""The index on disk: no pickle is ever loaded, odd manifests and pointers are messages."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from fixtures.outcome import no_traceback

from supportdesk.kb import KnowledgeBase
from supportdesk.kb.store import IndexIntegrityError

SRC = Path(__file__).resolve().parents[2] / "src"


class _Planted:
    """Unpickling this writes a marker file: proof that code from a data file ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (Path(self.marker), "code ran"))


def _build(settings, embedder):
    kb = KnowledgeBase(settings, embedder=embedder)
    report = kb.reload()
    assert report.ok, report.error
    return kb


def _current(kb: KnowledgeBase) -> Path:
    return kb.store.root / (kb.store.root / "CURRENT").read_text().strip()


def test_no_pickle_is_written_and_none_is_read(settings_factory, small_kb, hash_embedder, monkeypatch):
    settings = settings_factory(small_kb)
    kb = _build(settings, hash_embedder)
    gen = _current(kb)
    assert sorted(p.name for p in gen.iterdir()) == ["chunks.jsonl", "index.faiss", "manifest.json"]

    def forbidden(*args, **kwargs):
        raise AssertionError("pickle used while loading an index")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    fresh = KnowledgeBase(settings, embedder=hash_embedder)
    snap = fresh.snapshot()
    assert snap.chunk_count == kb.snapshot().chunk_count
    hit = fresh.search("return a router", k=1, mode="bm25").hits[0]
    assert hit.chunk.text and hit.chunk.source


def test_planted_pickle_with_a_resigned_manifest_never_runs(settings_factory, small_kb, hash_embedder, tmp_path):
    """Defect 1: the attacker controls the folder, key included, and re-signs an old-format manifest."""
    settings = settings_factory(small_kb)
    kb = _build(settings, hash_embedder)
    gen = _current(kb)
    marker = tmp_path / "pwned"
    (gen / "index.pkl").write_bytes(pickle.dumps(_Planted(str(marker))))
    (kb.store.root / ".key").write_bytes(b"attacker-chosen-key-000000000000")
    manifest = json.loads((gen / "manifest.json").read_text())
    from supportdesk.checksum import sha256_file

    manifest.update(format=1, checksums={"index.faiss": sha256_file(gen / "index.faiss"),
                                         "index.pkl": sha256_file(gen / "index.pkl")})
    manifest["signature"] = kb.store._sign(manifest)
    (gen / "manifest.json").write_text(json.dumps(manifest))

    fresh = KnowledgeBase(settings, embedder=hash_embedder)
    with pytest.raises(IndexIntegrityError, match=r"old pickled format.*kb build --force"):
        fresh.snapshot()
    assert not marker.exists()
    report = fresh.reload(force=True)  # the way out the message names
    assert report.ok and not marker.exists()


def test_the_code_has_no_dangerous_deserialization():
    offenders = [str(p) for p in SRC.rglob("*.py")
                 if "allow_dangerous_deserialization" in p.read_text() or "import pickle" in p.read_text()]
    assert offenders == []


@pytest.mark.parametrize("body", ["[1, 2, 3]", '"a string"', "42", "null"])
def test_manifest_that_is_json_but_not_an_object(cli, body):
    """Defect 5."""
    assert cli("kb", "build").exit_code == 0
    built = cli("kb", "stats", "--json")
    index_dir = Path(json.loads(built.stdout)["index_dir"])
    gen = index_dir / (index_dir / "CURRENT").read_text().strip()
    (gen / "manifest.json").write_text(body)
    for args in (("kb", "stats"), ("kb", "search", "router")):
        result = cli(*args)
        assert result.exit_code == 1
        assert "not a manifest object" in result.stderr and "kb build --force" in result.stderr
        no_traceback(result)


def test_current_naming_a_missing_generation_falls_back(settings_factory, small_kb, hash_embedder, cli):
    assert cli("kb", "build").exit_code == 0
    (small_kb / "extra.md").write_text("# Extra\n\nA second generation.\n")
    assert cli("kb", "build").exit_code == 0
    index_dir = Path(json.loads(cli("kb", "stats", "--json").stdout)["index_dir"])
    newest = (index_dir / "CURRENT").read_text().strip()
    (index_dir / "CURRENT").write_text("gen-20990101T000000-000000000\n")
    stats = cli("kb", "stats", "--json")
    assert stats.exit_code == 0, stats.output
    info = json.loads(stats.stdout)
    assert info["generation"] == newest
    assert "gen-20990101T000000-000000000, which is missing" in info["warning"]
    found = cli("kb", "search", "router", "--json")
    assert found.exit_code == 0 and "which is missing" in found.stderr


def test_two_processes_never_build_into_one_data_dir(settings_factory, small_kb, hash_embedder):
    """An inter-process lock: the second build is told, and changes nothing."""
    from filelock import FileLock

    settings = settings_factory(small_kb)
    kb = _build(settings, hash_embedder)
    first = kb.snapshot().generation
    (small_kb / "extra.md").write_text("# Extra\n\nMore.\n")
    other = FileLock(str(kb.store.root / ".lock"))  # what another process holds while it builds
    with other:
        report = KnowledgeBase(settings, embedder=hash_embedder).reload()
    assert not report.ok and "another supportdesk process is building" in report.error
    assert (kb.store.root / "CURRENT").read_text().strip() == first
    assert KnowledgeBase(settings, embedder=hash_embedder).reload().ok  # once the lock is free

