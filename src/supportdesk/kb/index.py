"""The knowledge base as the rest of the app sees it: search now, reload without stopping.

A ``KnowledgeBase`` serves searches from an immutable snapshot. ``reload()`` scans the KB
folder, re-embeds only files whose content changed, edits a *copy* of the FAISS index,
persists it as a new signed generation and only then swaps the snapshot in: searches running
meanwhile use the old one, and a reload that fails leaves the old one serving.

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
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings

from supportdesk.brand import load_brand
from supportdesk.kb import files as kb_files
from supportdesk.kb.calibration import RECALIBRATE_SHARE, Calibration, calibrate
from supportdesk.kb.chunking import Chunk, split
from supportdesk.kb.embeddings import EmbedderInfo, create_embedder, embedder_info
from supportdesk.kb.lexical import BM25Index
from supportdesk.kb.loaders import LoadError, load
from supportdesk.kb.normalize import VERSION as TEXT_FORMAT
from supportdesk.kb.questions import QuestionVectors, embed_questions, manifest_entry, mostly_faq
from supportdesk.kb.search import Mode, Searcher, SearchResult, timed_search
from supportdesk.kb.store import (
    GenerationStore,
    IndexBusy,
    IndexIntegrityError,
    clone_vectorstore,
    new_vectorstore,
)
from supportdesk.sanitize import clean_question, strip_control
from supportdesk.settings import Settings


class ReloadInProgress(RuntimeError):
    """Only one reload runs at a time."""


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
LABELLED_FILE = ".supportdesk-calibration.toml"
"""In the KB folder (a dotfile, so never indexed): values fitted on hand-labelled questions for these docs."""


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
class Snapshot:
    """Everything one generation needs to answer searches; never mutated once built."""

    searcher: Searcher
    manifest: dict[str, Any]
    generation: str | None
    loaded_at: float

    @property
    def chunk_count(self) -> int:
        return len(self.searcher.chunks)

    @functools.cached_property
    def calibration(self) -> Calibration | None:
        return Calibration.from_json(self.manifest.get("calibration"))

    @functools.cached_property
    def titles(self) -> tuple[str, ...]:
        return tuple({c.source: c.title for c in self.searcher.chunks if c.title}.values())

    def vectors(self) -> np.ndarray:
        """Every chunk's vector, in ``searcher.chunks`` order (read back from FAISS)."""
        searcher = self.searcher
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


@dataclass
class KBStats:
    kb_dir: str
    index_dir: str
    generation: str | None
    built_at: str | None
    files: int
    chunks: int
    embedder: str | None
    by_kind: dict[str, int]
    skipped: list[dict[str, str]]
    disk_bytes: int
    warning: str | None = None
    calibration: dict[str, Any] | None = None
    """What the generation measured about itself (kb/calibration.py)."""
    in_use: dict[str, Any] = field(default_factory=dict)
    """The fusion weight, hand-off and router values serving now, each with where it comes from."""
    vector_store: str = "faiss"
    """Where searches run: 'faiss' (this process) or 'milvus <collection> at <uri>'."""
    brand: dict[str, Any] = field(default_factory=dict)
    """The brand profile these docs are answered under, and where it comes from (brand.py)."""


def _searcher(store: Any) -> Searcher:
    docs = [store.docstore.search(cid) for cid in store.index_to_docstore_id.values()]
    chunks = sorted(
        (Chunk.from_document(doc) for doc in docs if isinstance(doc, Document)),
        key=lambda c: (c.source, c.position),
    )
    return Searcher(store, chunks, BM25Index([c.indexed_text for c in chunks]))


def _snapshot(store: Any, manifest: dict[str, Any], generation: str | None, searcher: Searcher | None = None) -> Snapshot:
    """A generation ready to search; ``searcher`` reuses one built already (same store, same chunks)."""
    searcher = searcher or _searcher(store)
    if searcher.questions is None and manifest.get("questions"):
        searcher.questions = QuestionVectors.for_chunks(searcher.chunks, QuestionVectors.stored(manifest["questions"]))
    return Snapshot(searcher, manifest, generation, time.time())


class KnowledgeBase:
    """Search and reload over one KB folder and one data dir."""

    def __init__(self, settings: Settings, embedder: Embeddings | None = None) -> None:
        self.settings = settings
        self.kb_dir = Path(settings.kb_dir)
        self.store = GenerationStore(settings.index_dir)
        self._embedder = embedder
        self._snapshot: Snapshot | None = None
        self._reload_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self.load_error: str | None = None
        self.load_warning: str | None = None
        self._labelled: tuple[int, dict[str, Any]] | None = None
        self._milvus: Any = None

    # -- the pieces, loaded lazily (the embedder import alone takes seconds) ------------
    @property
    def embedder(self) -> Embeddings:
        if self._embedder is None:
            self._embedder = create_embedder(self.settings.embedding, self.settings.model.ollama_host)
        return self._embedder

    @property
    def embedder_info(self) -> EmbedderInfo:
        return embedder_info(self.embedder)

    @property
    def milvus(self) -> Any:
        """The Milvus server of ``retrieval.store = "milvus"`` (kb/milvus.py); None with FAISS."""
        if self.settings.retrieval.store != "milvus":
            return None
        if self._milvus is None:
            from supportdesk.kb.milvus import MilvusIndex

            self._milvus = MilvusIndex(self.settings.retrieval, self.embedder)
        return self._milvus

    def _on_milvus(self, searcher: Searcher, manifest: dict[str, Any]) -> Searcher:
        """The generation's Milvus collection ranks its searches when there is one; else this process does."""
        if self.milvus is None:
            return searcher
        from supportdesk.kb.milvus import MilvusRankings, MilvusUnavailable

        collection = (manifest.get("milvus") or {}).get("collection")
        if not collection:
            self.load_warning = ("retrieval.store is 'milvus' but this generation was built for FAISS: searching here "
                                 "until the next 'supportdesk kb build' publishes it to Milvus")
            return searcher
        try:
            if not self.milvus.has(collection):
                self.load_warning = (f"Milvus at {self.milvus.uri} has no collection {collection}: searching here "
                                     "until the next 'supportdesk kb build --force'")
                return searcher
        except MilvusUnavailable as exc:
            self.load_warning = f"{exc}; searching this process's copy of the same generation until it answers"
        return searcher.with_remote(MilvusRankings(self.milvus, collection))

    @property
    def reloading(self) -> bool:
        return self._reload_lock.locked()

    def snapshot(self) -> Snapshot | None:
        """The generation being served, loading it from disk on first use."""
        if self._snapshot is None:
            with self._load_lock:
                if self._snapshot is None:
                    self._snapshot = self._load_current()
        return self._snapshot

    def _load_current(self) -> Snapshot | None:
        try:
            gen_dir, self.load_warning = self.store.serving_dir()
            if gen_dir is None:
                return None
            store, manifest = self.store.load(gen_dir, self.embedder)
        except IndexIntegrityError as exc:
            self.load_error = str(exc)
            raise
        import faiss

        faiss.omp_set_num_threads(1)  # measured: 2 OpenMP pools (torch + faiss) fight on 2 cores
        snap = _snapshot(store, manifest, gen_dir.name, self._on_milvus(_searcher(store), manifest))
        mismatch = self.embedder_mismatch(snap)
        if mismatch:
            self.load_warning = mismatch
        return snap

    def embedder_mismatch(self, snap: Snapshot | None = None) -> str | None:
        """Why the serving index's vectors are not this process's (another embedder or precision), or None.

        Questions are then embedded in a slightly different space; the app rebuilds in the
        background, and ``kb build`` re-embeds every chunk (the old generation serves until then).
        """
        snap = snap or self._snapshot
        info = getattr(self._embedder, "info", None) if self._embedder is not None else None
        if snap is None or not isinstance(info, EmbedderInfo):
            return None
        built = (snap.manifest.get("embedder") or {}).get("name")
        if built is None or built == info.name:
            return None
        return (f"the index was embedded with {built}, this process embeds with {info.name}: "
                "run 'supportdesk kb build' to re-embed it (the app does so in the background)")

    # -- search ----------------------------------------------------------------------
    def calibration(self) -> Calibration | None:
        """What the serving generation measured about itself (None: not calibrated, or no index)."""
        snap = self.snapshot()
        return snap.calibration if snap else None

    def document_titles(self) -> list[str]:
        """One title per indexed file (for telling an under-specified "the clinic" from a named one)."""
        snap = self.snapshot()
        if snap is None:
            return []
        return list(snap.titles)

    def labelled_calibration(self) -> dict[str, Any]:
        """The KB's hand-labelled values (``[router]`` of ``LABELLED_FILE`` in the KB folder, written
        by ``router calibrate --write-kb``): they override self-calibration for these docs."""
        path = self.kb_dir / LABELLED_FILE
        try:
            stamp = path.stat().st_mtime_ns
        except OSError:
            return {}
        if self._labelled is not None and self._labelled[0] == stamp:
            return self._labelled[1]
        import tomllib

        try:
            table = tomllib.loads(path.read_text(encoding="utf-8")).get("router", {})
        except (OSError, UnicodeError, tomllib.TOMLDecodeError) as exc:
            self.load_warning = f"{path} ignored: {exc}"
            table = {}
        values = table if isinstance(table, dict) else {}
        self._labelled = (stamp, values)
        return values

    def _chosen_pair(self, weights_key: str, threshold_key: str) -> tuple[list[float], float, str] | None:
        """(weights, threshold, source) from the settings you set, else the KB's labelled values;
        a labelled pair that is not 4 numbers and a probability is ignored with a warning."""
        cfg = self.settings.router
        if {weights_key, threshold_key} & cfg.model_fields_set:
            return list(getattr(cfg, weights_key)), float(getattr(cfg, threshold_key)), "settings"
        labelled = self.labelled_calibration()
        if weights_key not in labelled or threshold_key not in labelled:
            return None
        weights, threshold = labelled[weights_key], labelled[threshold_key]
        numbers = isinstance(weights, list) and len(weights) == 4 and all(
            isinstance(w, int | float) and not isinstance(w, bool) for w in weights)
        if not numbers or not isinstance(threshold, int | float) or not 0.0 <= threshold <= 1.0:
            self.load_warning = (f"{self.kb_dir / LABELLED_FILE}: [router] {weights_key} must be 4 numbers and "
                                 f"{threshold_key} a number from 0 to 1; ignored")
            return None
        return [float(w) for w in weights], float(threshold), "labelled set"

    def handoff_model(self) -> tuple[list[float], float, str]:
        """Answerability weights and threshold in use, and where they come from: settings you set,
        the KB's labelled set, this generation's self-calibration, or the built-in defaults."""
        chosen = self._chosen_pair("answerability_weights", "abstain_below")
        if chosen is not None:
            return chosen
        cfg = self.settings.router
        calibration = self.calibration() if self.settings.retrieval.apply_calibrated_handoff else None
        if calibration is not None and calibration.calibrated and calibration.answerability_weights is not None \
                and calibration.abstain_below is not None:
            return list(calibration.answerability_weights), calibration.abstain_below, "self-calibrated"
        return list(cfg.answerability_weights), cfg.abstain_below, "default"

    def router_model(self) -> tuple[list[float], float, str]:
        """Router weights and threshold in use: settings you set, the KB's labelled set, or the defaults."""
        cfg = self.settings.router
        return self._chosen_pair("weights", "threshold") or (list(cfg.weights), cfg.threshold, "default")

    def router_examples(self) -> list[str]:
        """Questions made from this KB for the router's grounded examples; none when the KB's
        router was fitted on a labelled set (its weights assume the generic examples alone)."""
        if not self.settings.router.kb_examples or "weights" in self.labelled_calibration():
            return []
        calibration = self.calibration()
        return list(calibration.router_examples) if calibration is not None and calibration.calibrated else []

    def dense_weight(self, snap: Snapshot | None = None) -> tuple[float, str]:
        """The fusion weight in use and where it comes from (settings, calibration or default)."""
        cfg = self.settings.retrieval
        if cfg.dense_weight is not None:
            return cfg.dense_weight, "settings"
        labelled = self.labelled_calibration().get("dense_weight")
        if isinstance(labelled, int | float) and 0.0 <= labelled <= 1.0:
            return float(labelled), "labelled set"
        snap = snap or self.snapshot()
        calibration = snap.calibration if snap and cfg.apply_calibration else None
        if calibration is not None and calibration.weight_chosen:
            return float(calibration.dense_weight), "self-calibrated"
        return cfg.default_dense_weight, "default"

    def search(
        self, query: str, k: int | None = None, mode: Mode | None = None, dense_weight: float | None = None
    ) -> SearchResult:
        query = clean_question(query)  # invalid UTF-8 or control bytes never reach the tokenizers
        snap = self.snapshot()
        cfg = self.settings.retrieval
        if snap is None:
            return SearchResult(query, [], vector=np.asarray(self.embedder.embed_query(query), dtype=np.float32))
        return timed_search(
            snap.searcher,
            self.embedder.embed_query,
            query,
            k=k or cfg.top_k,
            mode=mode or cfg.mode,
            candidates=cfg.candidates,
            dense_weight=dense_weight if dense_weight is not None else self.dense_weight(snap)[0],
            rrf_k=cfg.rrf_k,
            fusion=cfg.fusion,
            question_weight=cfg.question_weight,
        )

    # -- reload ----------------------------------------------------------------------
    def reload(self, progress: ProgressFn | None = None, force: bool = False) -> ReloadReport:
        """Bring the index in line with the KB folder. Never raises for bad input or a failed build."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("a knowledge-base reload is already running")
        started = time.perf_counter()
        report = ReloadReport(ok=False)
        try:
            with self.store.writing():
                self._reload(report, progress or (lambda p: None), force)
            report.ok = True
        except IndexBusy as exc:
            report.error = str(exc)
        except IndexIntegrityError as exc:
            report.error = f"{exc}. Run 'supportdesk kb build --force' to rebuild from the documents."
        except KBFolderMissing as exc:
            report.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - the old index keeps serving; say why
            serving = "previous index still serving" if self._snapshot is not None else "no index was built"
            report.error = f"reload failed ({serving}): {type(exc).__name__}: {exc}"
        finally:
            report.seconds = time.perf_counter() - started
            self._reload_lock.release()
        return report

    def _reload(self, report: ReloadReport, progress: ProgressFn, force: bool) -> None:
        cfg = self.settings
        if not self.kb_dir.is_dir():
            raise KBFolderMissing(f"KB folder {self.kb_dir} does not exist (setting kb_dir, --kb or SUPPORTDESK_KB_DIR)")
        progress(Progress("scan", 0, 1, str(self.kb_dir)))
        sources, report.skipped = kb_files.scan(self.kb_dir, int(cfg.chunking.max_file_mb * 1_000_000))
        try:
            current = None if force else self.snapshot()
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
                digest = kb_files.sha256_file(src.path)
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
            on_milvus = current.manifest.get("milvus") or {}
            published = self.milvus is None or (bool(on_milvus.get("collection"))
                                                and on_milvus.get("alias") == self.milvus.alias)
            questions_stored = (bool(current.manifest.get("questions")) or cfg.retrieval.question_weight == 0
                                or not mostly_faq(current.searcher.chunks))
            if calibrated and published and questions_stored and [s.rel for s in report.skipped] == current.manifest.get("skipped_files", []):
                return  # nothing changed: keep serving the same generation
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
        searcher = _searcher(store)  # built once: for the calibration and for serving
        known = QuestionVectors.stored(current.manifest.get("questions")) if current is not None and old_files else {}
        questions = (embed_questions(searcher.chunks, self._embed_texts, known)
                     if cfg.retrieval.question_weight > 0 else {})
        if questions:
            manifest["questions"] = manifest_entry(questions)
            searcher.questions = QuestionVectors.for_chunks(searcher.chunks, questions)
        previous = current.calibration if current is not None and old_files else None
        calibration = self._calibration_for(_snapshot(store, manifest, None, searcher), previous, progress)
        if calibration is not None:
            manifest["calibration"] = calibration.to_json()
            report.calibration = calibration.summary()
        if self.milvus is not None:  # the new collection is complete and current before CURRENT names it
            from supportdesk.kb.milvus import MilvusRankings

            collection = self._publish(searcher, _snapshot(store, manifest, None, searcher).vectors(), current, progress)
            manifest["milvus"] = {"collection": collection, "alias": self.milvus.alias}
            searcher = searcher.with_remote(MilvusRankings(self.milvus, collection))
        gen_dir = self.store.write(store, manifest)
        snapshot = _snapshot(store, self.store.read_manifest(gen_dir), gen_dir.name, searcher)
        self._snapshot = snapshot  # the swap: one reference assignment
        self.load_error = None
        report.chunks_added = len(new_chunks)
        report.chunks_removed = len(stale_ids)
        report.chunks_total = snapshot.chunk_count
        report.files_total = len(new_files)
        report.generation = gen_dir.name
        progress(Progress("done", 1, 1, gen_dir.name))

    def _publish(self, searcher: Searcher, vectors: np.ndarray, current: Snapshot | None, progress: ProgressFn) -> str:
        """Write the generation into its own Milvus collection and point the alias at it. Milvus down:
        raises, the reload fails, and the previous generation keeps serving."""
        milvus = self.milvus
        total = len(searcher.chunks)
        progress(Progress("milvus", 0, total, f"writing to Milvus at {milvus.uri}"))
        owner = self.store.owner_tag()
        name = milvus.publish(searcher.chunks, vectors,
                              lambda done, n: progress(Progress("milvus", done, n, f"writing to Milvus at {milvus.uri}")),
                              owner=owner)
        keep = (current.manifest.get("milvus") or {}).get("collection") if current is not None else None
        try:
            milvus.make_current(name, keep=keep, owner=owner)
        except Exception:
            milvus._drop_quietly(name)
            raise
        return name

    def _calibration_for(self, snap: Snapshot, previous: Calibration | None, progress: ProgressFn) -> Calibration | None:
        """Calibrate the new generation when enough changed since the last calibration; else carry
        the previous one over. A calibration that fails keeps the previous values, never half of them."""
        if not self.settings.retrieval.self_calibrate or not self._calibration_useful(snap.searcher.chunks):
            return previous
        if previous is not None and previous.chunks:
            changed = abs(snap.chunk_count - previous.chunks) / previous.chunks
            if changed < RECALIBRATE_SHARE:
                return previous
        try:
            return self.run_calibration(snap, progress)
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
        if cfg.retrieval.apply_calibrated_handoff:
            return True
        if cfg.router.kb_examples and "weights" not in self.labelled_calibration():
            return True
        if cfg.retrieval.apply_calibration and cfg.retrieval.dense_weight is None \
                and "dense_weight" not in self.labelled_calibration():
            return mostly_faq(chunks)
        return False

    def run_calibration(self, snap: Snapshot, progress: ProgressFn | None = None) -> Calibration:
        cfg = self.settings
        report = progress or (lambda p: None)
        from supportdesk.models.cpu_load import busy_with

        with busy_with("calibrating the index"):
            return calibrate(
                snap.searcher.chunks,
                snap.vectors(),
                self.embedder.embed_documents,
                self.embedder.embed_query,
                default_weight=cfg.retrieval.default_dense_weight,
                top_k=cfg.router.context_chunks,
                candidates=cfg.retrieval.candidates,
                progress=lambda done, total: report(Progress("calibrate", min(done, total), total, "pseudo-questions")),
            )

    def recalibrate(self, progress: ProgressFn | None = None) -> tuple[Calibration, str]:
        """``kb calibrate``: measure the serving generation again and serve it as a new generation
        (same vectors, new manifest), so a generation's files never change once written."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("a knowledge-base reload is already running")
        try:
            with self.store.writing():
                snap = self.snapshot()
                if snap is None:
                    raise KBFolderMissing("no index yet: run 'supportdesk kb build' first")
                calibration = self.run_calibration(snap, progress)
                manifest = {k: v for k, v in snap.manifest.items() if not k.startswith("_")}
                manifest.pop("signature", None)
                manifest["calibration"] = calibration.to_json()
                store = snap.searcher.store  # written as it is: a generation never edits its vectors
                gen_dir = self.store.write(store, manifest)
                self._snapshot = _snapshot(store, self.store.read_manifest(gen_dir), gen_dir.name, snap.searcher)
                return calibration, gen_dir.name
        finally:
            self._reload_lock.release()

    def _embed_texts(self, texts: list[str]) -> list[list[float]]:
        """A few texts (question headings) embedded by the build, after any answer being written."""
        from supportdesk.models.cpu_load import busy_with, wait_while_answering

        wait_while_answering()
        with busy_with("embedding question headings"):
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
        from supportdesk.models.cpu_load import busy_with, wait_while_answering, yielding_build

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
                        out.extend(self.embedder.embed_documents([chunks[i].indexed_text for i in rows]))
                    progress(Progress("embed", min(start + batch, len(order)), len(order), "embedding chunks"))
        finally:
            if set_threads is not None:
                set_threads(threads)
        report.embed_seconds = time.perf_counter() - started
        vectors = np.empty((len(chunks), dim), dtype=np.float32)
        vectors[np.asarray(order)] = np.asarray(out, dtype=np.float32)
        return vectors

    # -- stats -----------------------------------------------------------------------
    def stats(self) -> KBStats:
        snap = self.snapshot()
        manifest = snap.manifest if snap else {}
        files = manifest.get("files", {})
        by_kind: dict[str, int] = {}
        for meta in files.values():
            by_kind[meta["kind"]] = by_kind.get(meta["kind"], 0) + 1
        in_use = self.values_in_use() if snap else {}  # first: reading the labelled file may warn
        gen_dir = self.store.root / snap.generation if snap and snap.generation else None
        disk = sum(p.stat().st_size for p in gen_dir.iterdir()) if gen_dir and gen_dir.exists() else 0
        return KBStats(
            kb_dir=str(self.kb_dir),
            index_dir=str(self.store.root),
            generation=snap.generation if snap else None,
            built_at=manifest.get("built_at"),
            files=len(files),
            chunks=snap.chunk_count if snap else 0,
            embedder=manifest.get("embedder", {}).get("name"),
            by_kind=by_kind,
            skipped=manifest.get("skipped", []),
            disk_bytes=disk,
            warning=self.load_warning,
            calibration=snap.calibration.to_json() if snap and snap.calibration else None,
            in_use=in_use,
            vector_store=self._vector_store_line(snap),
            brand=load_brand(self.settings).to_json(),
        )

    def _vector_store_line(self, snap: Snapshot | None) -> str:
        remote = snap.searcher.remote if snap else None
        if remote is None:
            return "faiss"
        line = f"milvus {remote.collection} at {remote.index.uri} (alias {remote.index.alias})"
        if snap.searcher.remote_error:
            line += f" — last search: {snap.searcher.remote_error}"
        return line

    def values_in_use(self) -> dict[str, Any]:
        weight, weight_from = self.dense_weight()
        handoff_weights, abstain_below, handoff_from = self.handoff_model()
        router_weights, router_threshold, router_from = self.router_model()
        snap = self.snapshot()
        questions = snap.searcher.questions if snap else None
        return {
            "dense_weight": {"value": weight, "from": weight_from},
            "question_vectors": {"count": len(questions.texts) if questions else 0,
                                 "weight": self.settings.retrieval.question_weight},
            "handoff": {"weights": handoff_weights, "abstain_below": abstain_below, "from": handoff_from},
            "router": {"weights": router_weights, "threshold": router_threshold, "from": router_from,
                       "kb_examples": len(self.router_examples())},
        }
