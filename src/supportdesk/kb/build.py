"""Building the next index generation of one KB folder: scan, load, chunk, embed, calibrate, publish.

``Builder.build`` scans the KB folder, re-embeds only files whose content changed, edits a
*copy* of the serving FAISS index, calibrates the generation when enough changed, publishes it
to the search store (Milvus) and persists it as a new signed generation. It never touches the
generation being served: ``KnowledgeBase.reload`` (kb/index.py) swaps the result in.

Change detection is per file (size + mtime, then sha256), before anything is parsed. We use
this instead of LangChain's ``index()`` + record manager because that API decides per parsed
chunk, so every PDF would be re-parsed on each reload just to learn that nothing changed.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from supportdesk.checksum import sha256_file
from supportdesk.kb import files as kb_files
from supportdesk.kb.calibration import RECALIBRATE_SHARE, Calibration, calibrate
from supportdesk.kb.chunking import Chunk, split
from supportdesk.kb.embeddings import EmbedderInfo, embedder_info
from supportdesk.kb.loaders import LoadError, load
from supportdesk.kb.normalize import VERSION as TEXT_FORMAT
from supportdesk.kb.questions import QuestionVectors, embed_questions, manifest_entry, mostly_faq
from supportdesk.kb.search import Searcher
from supportdesk.kb.snapshot import Snapshot, new_searcher, searcher_vectors, with_questions
from supportdesk.kb.store import (
    GenerationStore,
    IndexIntegrityError,
    SearchStore,
    clone_vectorstore,
    new_vectorstore,
)
from supportdesk.kb.values import Labelled, read_labelled
from supportdesk.sanitize import strip_control
from supportdesk.settings import Settings

_EMBEDDED = [0]
_EMBEDDED_LOCK = threading.Lock()


def embedded_texts() -> int:
    """How many texts (chunks, question headings, pseudo-questions) builds in this process embedded:
    a replica that adopts another's generation embeds none (``/v1/status`` shows it)."""
    return _EMBEDDED[0]


def _count(n: int) -> None:
    with _EMBEDDED_LOCK:
        _EMBEDDED[0] += n


def _counted(embed: Callable[[list[str]], list[list[float]]]) -> Callable[[list[str]], list[list[float]]]:
    def run(texts: list[str]) -> list[list[float]]:
        _count(len(texts))
        return embed(texts)
    return run


class KBFolderMissing(FileNotFoundError):
    """The configured KB folder does not exist."""


@dataclass
class Progress:
    """One step of a reload, for a progress bar or a status line."""

    stage: str  # "scan", "load", "embed", "save", "done"
    done: int
    total: int
    detail: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class ReloadReport:
    ok: bool
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    skipped: list[kb_files.Skipped] = field(default_factory=list)
    kept_previous: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_total: int = 0
    files_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    generation: str | None = None
    error: str | None = None
    calibration: str | None = None
    """What self-calibration chose (or why the defaults stay); None when it did not run."""

    @property
    def embedded_chunks_per_s(self) -> float:
        return self.chunks_added / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "error": self.error,
            "generation": self.generation,
            "added": self.added,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": len(self.unchanged),
            "skipped": [{"file": s.rel, "reason": s.reason} for s in self.skipped],
            "kept_previous": self.kept_previous,
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "chunks_total": self.chunks_total,
            "files_total": self.files_total,
            "seconds": round(self.seconds, 3),
            "calibration": self.calibration,
        }


@dataclass(frozen=True)
class Built:
    """A generation written and made current on disk (and in the search store), ready to serve."""

    searcher: Searcher
    manifest: dict[str, Any]
    """As read back and verified from its folder."""
    generation: str


class Builder:
    """Builds generations of one KB folder into one ``GenerationStore`` (the caller holds its writer lock)."""

    def __init__(self, settings: Settings, store: GenerationStore, search_store: SearchStore,
                 embedder: Callable[[], Embeddings]) -> None:
        self.settings = settings
        self.kb_dir = Path(settings.kb_dir)
        self.store = store
        self.search_store = search_store
        self._embedder = embedder
        self.labelled = Labelled()
        """The KB's labelled file as the last build read it (once per build)."""
        self.owner: Callable[[], str] = store.owner_tag
        """Names what this build publishes to the search store (replicas sharing one: the cluster's)."""

    @property
    def embedder(self) -> Embeddings:
        return self._embedder()

    @property
    def embedder_info(self) -> EmbedderInfo:
        return embedder_info(self.embedder)

    # -- a reload ----------------------------------------------------------------------------
    def build(self, report: ReloadReport, progress: ProgressFn, force: bool,
              current_snapshot: Callable[[], Snapshot | None]) -> Built | None:
        """The next generation, or None when nothing changed (the serving one stays); ``report``
        says what was done. ``current_snapshot`` loads the serving generation (not with ``force``)."""
        cfg = self.settings
        if not self.kb_dir.is_dir():
            raise KBFolderMissing(f"KB folder {self.kb_dir} does not exist (setting kb_dir, --kb or SUPPORTDESK_KB_DIR)")
        progress(Progress("scan", 0, 1, str(self.kb_dir)))
        sources, report.skipped = kb_files.scan(self.kb_dir, int(cfg.chunking.max_file_mb * 1_000_000))
        self.labelled = read_labelled(self.kb_dir)
        try:
            current = None if force else current_snapshot()
        except IndexIntegrityError:
            if not force:
                raise
            current = None
        info = self.embedder_info
        build_params = {
            "embedder": {"name": info.name, "dim": info.dim},
            "chunk_size": cfg.chunking.chunk_size,
            "chunk_overlap": cfg.chunking.chunk_overlap,
            "text_format": TEXT_FORMAT,
        }
        old_files: dict[str, dict[str, Any]] = {}
        if current is not None and all(current.manifest.get(k) == v for k, v in build_params.items()):
            old_files = current.manifest.get("files", {})

        # Decide per file: unchanged, changed or added. Hash only when stat says it may differ.
        new_files: dict[str, dict[str, Any]] = {}
        to_load: list[tuple[kb_files.SourceFile, str]] = []
        for src in sources:
            old = old_files.get(src.rel)
            if old and old["size"] == src.size and old["mtime_ns"] == src.mtime_ns:
                new_files[src.rel] = old
                report.unchanged.append(src.rel)
                continue
            try:
                digest = sha256_file(src.path)
            except OSError as exc:
                report.skipped.append(kb_files.Skipped(src.rel, f"cannot read: {exc.strerror or exc}"))
                if old:
                    new_files[src.rel] = old
                    report.kept_previous.append(src.rel)
                continue
            if old and old["sha256"] == digest:
                new_files[src.rel] = dict(old, mtime_ns=src.mtime_ns)
                report.unchanged.append(src.rel)
                continue
            to_load.append((src, digest))

        # Parse and chunk what changed. A file that fails keeps its previous chunks, if any.
        new_chunks: list[Chunk] = []
        for done, (src, digest) in enumerate(to_load, start=1):
            progress(Progress("load", done, len(to_load), src.rel))
            old = old_files.get(src.rel)
            try:
                doc = load(src)
                chunks = split(doc, src.rel, cfg.chunking.chunk_size, cfg.chunking.chunk_overlap)
                if not chunks:
                    raise LoadError("no text content")
            except Exception as exc:  # noqa: BLE001 - one bad file never blocks a reload
                reason = str(exc) if isinstance(exc, LoadError) else f"cannot be indexed ({type(exc).__name__}: {exc})"
                report.skipped.append(kb_files.Skipped(src.rel, strip_control(reason)))
                if old:
                    new_files[src.rel] = old
                    report.kept_previous.append(src.rel)
                continue
            (report.changed if old else report.added).append(src.rel)
            new_chunks.extend(chunks)
            new_files[src.rel] = {
                "sha256": digest,
                "size": src.size,
                "mtime_ns": src.mtime_ns,
                "kind": src.kind,
                "title": doc.title,
                "chunk_ids": [c.id for c in chunks],
            }
        report.removed = sorted(set(old_files) - set(new_files))
        stale_ids = [
            cid
            for rel, meta in old_files.items()
            if rel in report.removed or rel in report.changed
            for cid in meta["chunk_ids"]
        ]

        if current is not None and old_files and not (new_chunks or stale_ids):
            report.chunks_total = current.chunk_count
            report.files_total = len(new_files)
            report.generation = current.generation
            calibrated = (current.calibration is not None or not cfg.retrieval.self_calibrate
                          or not self._calibration_useful(current.searcher.chunks))
            published = self.search_store.holds(current.manifest)
            questions_stored = (bool(current.manifest.get("questions")) or cfg.retrieval.question_weight == 0
                                or not mostly_faq(current.searcher.chunks))
            if calibrated and published and questions_stored and [s.rel for s in report.skipped] == current.manifest.get("skipped_files", []):
                return None  # nothing changed: keep serving the same generation
        vectors = self._embed(new_chunks, progress, report)

        progress(Progress("save", 0, 1, "writing index"))
        if current is not None and old_files:
            store = clone_vectorstore(current.searcher.store)
            if stale_ids:
                store.delete(stale_ids)
        else:
            store = new_vectorstore(self.embedder, info.dim)
        if new_chunks:
            store.add_embeddings(
                list(zip([c.text for c in new_chunks], vectors.tolist(), strict=True)),
                metadatas=[c.metadata() for c in new_chunks],
                ids=[c.id for c in new_chunks],
            )
        manifest = dict(
            build_params,
            kb_dir=str(self.kb_dir),
            built_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            files=new_files,
            skipped_files=[s.rel for s in report.skipped],
            skipped=[{"file": s.rel, "reason": s.reason} for s in report.skipped],
        )
        searcher = new_searcher(store)  # built once: for the calibration and for serving
        known = QuestionVectors.stored(current.manifest.get("questions")) if current is not None and old_files else {}
        questions = (embed_questions(searcher.chunks, self._embed_texts, known)
                     if cfg.retrieval.question_weight > 0 else {})
        if questions:
            manifest["questions"] = manifest_entry(questions)
            searcher.questions = QuestionVectors.for_chunks(searcher.chunks, questions)
        previous = current.calibration if current is not None and old_files else None
        calibration = self._calibration_for(with_questions(searcher, manifest), previous, progress)
        if calibration is not None:
            manifest["calibration"] = calibration.to_json()
            report.calibration = calibration.summary(cfg.retrieval.apply_calibrated_handoff)
        # Published before CURRENT names it: the new collection is complete and current first.
        searcher, published_as = self.search_store.publish(
            searcher, functools.partial(searcher_vectors, searcher), current.manifest if current is not None else None,
            lambda done, total, detail: progress(Progress(self.search_store.name, done, total, detail)),
            self.owner)
        manifest.update(published_as)
        gen_dir = self.store.write(store, manifest)
        built = Built(searcher, self.store.read_manifest(gen_dir), gen_dir.name)
        report.chunks_added = len(new_chunks)
        report.chunks_removed = len(stale_ids)
        report.chunks_total = len(searcher.chunks)
        report.files_total = len(new_files)
        report.generation = gen_dir.name
        return built

    # -- calibration -------------------------------------------------------------------------
    def _calibration_for(self, searcher: Searcher, previous: Calibration | None,
                         progress: ProgressFn) -> Calibration | None:
        """Calibrate the new generation when enough changed since the last calibration; else carry
        the previous one over. A calibration that fails keeps the previous values, never half of them."""
        if not self.settings.retrieval.self_calibrate or not self._calibration_useful(searcher.chunks):
            return previous
        if previous is not None and previous.chunks:
            changed = abs(len(searcher.chunks) - previous.chunks) / previous.chunks
            if changed < RECALIBRATE_SHARE:
                return previous
        try:
            return self.calibrate(searcher, progress)
        except Exception as exc:  # noqa: BLE001 - the index is still good; say why the values stayed
            if previous is not None:
                return previous
            return Calibration(status="defaults", reason=f"calibration failed: {type(exc).__name__}: {exc}")

    def _calibration_useful(self, chunks: list[Chunk]) -> bool:
        """Would anything serve a self-calibration's values? Its router examples when the KB's
        router is not labelled; its weight on a KB that is mostly a FAQ (elsewhere it keeps the
        default, see kb/calibration.py); its hand-off when applied. If not, a build skips it, so a
        first run on the sample KB spends no CPU on it; 'kb calibrate' still measures on demand."""
        cfg = self.settings
        labelled = self.labelled.table
        if cfg.retrieval.apply_calibrated_handoff:
            return True
        if cfg.router.kb_examples and "weights" not in labelled:
            return True
        if cfg.retrieval.apply_calibration and cfg.retrieval.dense_weight is None and "dense_weight" not in labelled:
            return mostly_faq(chunks)
        return False

    def calibrate(self, searcher: Searcher, progress: ProgressFn | None = None) -> Calibration:
        """Measure a generation on pseudo-questions made from its own chunks (kb/calibration.py)."""
        cfg = self.settings
        report = progress or (lambda p: None)
        from supportdesk.cpu_load import busy_with

        with busy_with("calibrating the index"):
            return calibrate(
                searcher.chunks,
                searcher_vectors(searcher),
                _counted(self.embedder.embed_documents),
                self.embedder.embed_query,
                default_weight=cfg.retrieval.default_dense_weight,
                top_k=cfg.router.context_chunks,
                candidates=cfg.retrieval.candidates,
                progress=lambda done, total: report(Progress("calibrate", min(done, total), total, "pseudo-questions")),
            )

    def recalibrate(self, snap: Snapshot, progress: ProgressFn | None = None) -> tuple[Calibration, Built]:
        """``kb calibrate``: measure the serving generation again and write it as a new generation
        (same vectors, new manifest), so a generation's files never change once written."""
        self.labelled = read_labelled(self.kb_dir)
        calibration = self.calibrate(snap.searcher, progress)
        manifest = {k: v for k, v in snap.manifest.items() if not k.startswith("_")}
        manifest.pop("signature", None)
        manifest["calibration"] = calibration.to_json()
        store = snap.searcher.store  # written as it is: a generation never edits its vectors
        gen_dir = self.store.write(store, manifest)
        return calibration, Built(snap.searcher, self.store.read_manifest(gen_dir), gen_dir.name)

    # -- embedding ---------------------------------------------------------------------------
    def _embed_texts(self, texts: list[str]) -> list[list[float]]:
        """A few texts (question headings) embedded by the build, after any answer being written."""
        from supportdesk.cpu_load import busy_with, wait_while_answering

        wait_while_answering()
        with busy_with("embedding question headings"):
            _count(len(texts))
            return self.embedder.embed_documents(texts)

    def _embed(self, chunks: list[Chunk], progress: ProgressFn, report: ReloadReport) -> np.ndarray:
        dim = self.embedder_info.dim
        if not chunks:
            return np.zeros((0, dim), dtype=np.float32)
        batch = self.settings.embedding.batch_size
        out: list[list[float]] = []
        started = time.perf_counter()
        # Longest first in each batch keeps padding waste low; order is restored below.
        order = sorted(range(len(chunks)), key=lambda i: -len(chunks[i].indexed_text))
        from supportdesk.cpu_load import busy_with, wait_while_answering, yielding_build

        # Sharing the CPU with answers being written, here or by another supportdesk process:
        # the build waits before each batch while one is (a few seconds at most, then it goes
        # on with one thread), and the answer's model counts the build's cores as free.
        set_threads = getattr(self.embedder, "set_threads", None)
        threads = self.settings.embedding.threads
        try:
            with yielding_build():
                for start in range(0, len(order), batch):
                    rows = order[start : start + batch]
                    still_answering = wait_while_answering()
                    if set_threads is not None:
                        set_threads(1 if still_answering else threads)
                    with busy_with("embedding chunks"):
                        _count(len(rows))
                        out.extend(self.embedder.embed_documents([chunks[i].indexed_text for i in rows]))
                    progress(Progress("embed", min(start + batch, len(order)), len(order), "embedding chunks"))
        finally:
            if set_threads is not None:
                set_threads(threads)
        report.embed_seconds = time.perf_counter() - started
        vectors = np.empty((len(chunks), dim), dtype=np.float32)
        vectors[np.asarray(order)] = np.asarray(out, dtype=np.float32)
        return vectors


__all__ = ["Builder", "Built", "KBFolderMissing", "Progress", "ProgressFn", "ReloadReport", "embedded_texts"]
