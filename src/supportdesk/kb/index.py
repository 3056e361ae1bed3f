"""The knowledge base as the rest of the app sees it: search now, reload without stopping.

A ``KnowledgeBase`` serves searches from an immutable snapshot (kb/snapshot.py): one index
generation, its searcher and the values in effect for it (kb/values.py, resolved once per
generation). ``reload()`` has a ``Builder`` (kb/build.py) make the next generation from the KB
folder, persisted and signed, and only then swaps the snapshot in: searches running meanwhile
use the old one, and a reload that fails leaves the old one serving. Where searches run
(FAISS here, or Milvus) is the search store (kb/store.py, kb/milvus.py), used by both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from supportdesk.brand import load_brand
from supportdesk.kb.aliases import Aliases
from supportdesk.kb.build import Builder, Built, KBFolderMissing, Progress, ProgressFn, ReloadReport
from supportdesk.kb.calibration import Calibration
from supportdesk.kb.embeddings import EmbedderInfo, create_embedder, embedder_info
from supportdesk.kb.normalize import VERSION as TEXT_FORMAT
from supportdesk.kb.search import Mode, SearchResult, timed_search
from supportdesk.kb.snapshot import Snapshot, make_snapshot, manifest_calibration, new_searcher
from supportdesk.kb.store import GenerationStore, IndexBusy, IndexIntegrityError, SearchStore, open_search_store
from supportdesk.kb.values import LABELLED_FILE, Labelled, ValuesInEffect, labelled_stamp, read_labelled, resolve
from supportdesk.sanitize import clean_question
from supportdesk.settings import Settings

if TYPE_CHECKING:
    from supportdesk.kb.cluster import SharedKB

__all__ = [
    "LABELLED_FILE", "KBFolderMissing", "KBStats", "KnowledgeBase", "Progress", "ProgressFn", "ReloadInProgress",
    "ReloadReport", "Snapshot",
]


class ReloadInProgress(RuntimeError):
    """Only one reload runs at a time."""


@dataclasses.dataclass
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
    in_use: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The fusion weight, hand-off and router values serving now, each with where it comes from."""
    vector_store: str = "faiss"
    """Where searches run: 'faiss' (this process) or 'milvus <collection> at <uri>'."""
    brand: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The brand profile these docs are answered under, and where it comes from (brand.py)."""
    cluster: dict[str, Any] | None = None
    """Replicas sharing this KB (kb/cluster.py): the current generation, who serves it, who lags."""


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
        self._swap_lock = threading.Lock()
        """Held while the serving snapshot is replaced (a reload, or its values resolved anew)."""
        self._values_without_index: ValuesInEffect | None = None
        self.load_error: str | None = None
        self.load_warning: str | None = None
        self.search_store: SearchStore = open_search_store(settings.retrieval, lambda: self.embedder)
        self.cluster: SharedKB | None = None
        """Team-server replicas sharing one generation (kb/cluster.py); None: this process alone."""

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
        return getattr(self.search_store, "index", None) if self.settings.retrieval.store == "milvus" else None

    def _builder(self) -> Builder:
        builder = Builder(self.settings, self.store, self.search_store, lambda: self.embedder)
        if self.cluster is not None:
            builder.owner = self.cluster.owner_tag
        builder.kb_dir = self.kb_dir  # the folder this KB serves now (a caller may point it elsewhere)
        return builder

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
        searcher, warning = self.search_store.serve(new_searcher(store), manifest)
        if warning:
            self.load_warning = warning
        values = self._resolve(read_labelled(self.kb_dir), manifest_calibration(manifest))
        snap = make_snapshot(searcher, manifest, gen_dir.name, values)
        mismatch = self.embedder_mismatch(snap) or self.format_mismatch(snap)
        if mismatch:
            self.load_warning = mismatch
        return snap

    def format_mismatch(self, snap: Snapshot | None = None) -> str | None:
        """Why the serving index's chunk texts are not what this version's ingest makes of the files (an
        older text format), or None. It still serves as it is; ``kb build`` reads every file again (a
        build never mixes chunks of two formats), and the app does so in the background."""
        snap = snap or self._snapshot
        if snap is None:
            return None
        built = snap.manifest.get("text_format")
        if built == TEXT_FORMAT:
            return None
        return (f"the index's texts were made by an older ingest (text format {built}, now {TEXT_FORMAT}): "
                "run 'supportdesk kb build' to read every file again (the app does so in the background)")

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

    def _serve(self, built: Built, labelled: Labelled) -> Snapshot:
        """Swap a new generation in: one reference assignment."""
        values = self._resolve(labelled, manifest_calibration(built.manifest))
        snapshot = make_snapshot(built.searcher, built.manifest, built.generation, values)
        with self._swap_lock:
            self._snapshot = snapshot
        self.load_error = None
        return snapshot

    # -- the values in effect ----------------------------------------------------------
    def _resolve(self, labelled: Labelled, calibration: Calibration | None) -> ValuesInEffect:
        values = resolve(self.settings, labelled, calibration)
        if values.warnings:
            self.load_warning = values.warnings[-1]
        return values

    def aliases(self) -> Aliases:
        """The serving generation's product names ↔ codes (read once per generation)."""
        snap = self.snapshot()
        return snap.aliases if snap is not None else Aliases()

    def values(self) -> ValuesInEffect:
        """The values a question uses now: the serving generation's, resolved when it was loaded or
        built (no file is read here); with no index yet, the settings' and the labelled file's."""
        snap = self.snapshot()
        if snap is not None:
            return snap.values
        with self._swap_lock:
            if self._values_without_index is None:
                self._values_without_index = self._resolve(read_labelled(self.kb_dir), None)
            return self._values_without_index

    def _values_now(self) -> ValuesInEffect:
        """``values()`` for the calls that inspect them (``kb stats``, the accessors below): resolved
        anew first when the labelled file changed since (one stat), and from then on served. What
        was ignored while resolving is the load warning again."""
        values = self.values()
        if labelled_stamp(self.kb_dir) != values.labelled.stamp:
            labelled = read_labelled(self.kb_dir)
            with self._swap_lock:
                snap = self._snapshot
                if snap is None:
                    values = self._values_without_index = self._resolve(labelled, None)
                else:
                    values = self._resolve(labelled, snap.calibration)
                    self._snapshot = dataclasses.replace(snap, values=values)
        if values.warnings:
            self.load_warning = values.warnings[-1]
        return values

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
        return dict(self._values_now().labelled.table)

    def handoff_model(self) -> tuple[list[float], float, str]:
        """Answerability weights and threshold in use, and where they come from: settings you set,
        the KB's labelled set, this generation's self-calibration, or the built-in defaults."""
        handoff = self._values_now().handoff
        weights, threshold = handoff.value
        return list(weights), threshold, handoff.source

    def router_model(self) -> tuple[list[float], float, str]:
        """Router weights and threshold in use: settings you set, the KB's labelled set, or the defaults."""
        router = self._values_now().router
        weights, threshold = router.value
        return list(weights), threshold, router.source

    def router_examples(self) -> list[str]:
        """Questions made from this KB for the router's grounded examples; none when the KB's
        router was fitted on a labelled set (its weights assume the generic examples alone)."""
        return list(self._values_now().router_examples.value)

    def dense_weight(self, snap: Snapshot | None = None) -> tuple[float, str]:
        """The fusion weight in use (of ``snap``'s generation when given) and where it comes from."""
        chosen = (snap.values if snap is not None else self._values_now()).dense_weight
        return chosen.value, chosen.source

    # -- search ----------------------------------------------------------------------
    def search(
        self, query: str, k: int | None = None, mode: Mode | None = None, dense_weight: float | None = None
    ) -> SearchResult:
        query = clean_question(query)  # invalid UTF-8 or control bytes never reach the tokenizers
        snap = self.snapshot()
        cfg = self.settings.retrieval
        if snap is None:
            return SearchResult(query, [], vector=np.asarray(self.embedder.embed_query(query), dtype=np.float32))
        values = snap.values
        return timed_search(
            snap.searcher,
            self.embedder.embed_query,
            query,
            k=k or cfg.top_k,
            mode=mode or cfg.mode,
            candidates=cfg.candidates,
            dense_weight=dense_weight if dense_weight is not None else values.dense_weight.value,
            rrf_k=cfg.rrf_k,
            fusion=cfg.fusion,
            question_weight=values.question_weight.value,
        )

    # -- reload ----------------------------------------------------------------------
    def reload(self, progress: ProgressFn | None = None, force: bool = False, by: str | None = None) -> ReloadReport:
        """Bring the index in line with the KB folder. Never raises for bad input or a failed build.
        With replicas (``cluster``), one reload at a time in the whole cluster, made on the cluster's
        current generation and shared with the others (``by``: who asked, as they are told)."""
        if not self._reload_lock.acquire(blocking=False):
            raise ReloadInProgress("a knowledge-base reload is already running")
        started = time.perf_counter()
        report = ReloadReport(ok=False)
        cluster = self.cluster
        try:
            if cluster is not None:
                from supportdesk.kb.cluster import ReloadHeld

                try:
                    cluster.acquire(by)
                except ReloadHeld as exc:
                    raise ReloadInProgress(str(exc)) from None
            try:
                with self.store.writing():
                    if cluster is not None:
                        cluster.sync()
                    self._reload(report, progress or (lambda p: None), force, by)
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
                if cluster is not None:
                    cluster.release()
        finally:
            report.seconds = time.perf_counter() - started
            self._reload_lock.release()
        return report

    def _reload(self, report: ReloadReport, progress: ProgressFn, force: bool, by: str | None = None) -> None:
        builder = self._builder()
        built = builder.build(report, progress, force, self.snapshot)
        if built is None:  # nothing changed: the same generation serves, with its values resolved again
            with self._swap_lock:
                snap = self._snapshot
                if snap is not None:
                    values = self._resolve(builder.labelled, snap.calibration)
                    if values != snap.values:
                        self._snapshot = dataclasses.replace(snap, values=values)
            if self.cluster is not None and snap is not None and snap.generation and self.cluster.current() is None:
                self.cluster.publish(snap.generation, by)
            return
        if self.cluster is not None:  # current for every replica first: a failure here leaves the old one serving
            self.cluster.publish(built.generation, by)
        self._serve(built, builder.labelled)
        progress(Progress("done", 1, 1, built.generation))

    # -- a generation another replica built ------------------------------------------------
    def local_generation(self) -> str | None:
        """The generation CURRENT names in this data dir (not loaded)."""
        try:
            gen_dir = self.store.current_dir()
        except IndexIntegrityError:
            return None
        return gen_dir.name if gen_dir is not None else None

    @contextlib.contextmanager
    def reload_lock_held(self) -> Iterator[None]:
        """This process's reload lock and the data dir's writer lock (waits for a local reload)."""
        with self._reload_lock, self.store.writing():
            yield

    @contextlib.contextmanager
    def reload_lock_tried(self) -> Iterator[bool]:
        """As ``reload_lock_held`` when free now; yields False (holding nothing) when a reload runs here."""
        if not self._reload_lock.acquire(blocking=False):
            yield False
            return
        try:
            with self.store.writing():
                yield True
        finally:
            self._reload_lock.release()

    def adopt_generation(self, name: str, files: dict[str, bytes], manifest: dict[str, Any]) -> Snapshot:
        """Serve a generation another replica built: its files written here as they are (nothing is
        embedded), then swapped in as a reload's (searches in flight finish on the old one). Call with
        ``reload_lock_held``."""
        gen_dir = self.store.adopt(name, files, manifest)
        store, verified = self.store.load(gen_dir, self.embedder)
        searcher, warning = self.search_store.serve(new_searcher(store), verified)
        self.load_warning = warning
        return self._serve(Built(searcher, verified, gen_dir.name), read_labelled(self.kb_dir))

    def run_calibration(self, snap: Snapshot, progress: ProgressFn | None = None) -> Calibration:
        return self._builder().calibrate(snap.searcher, progress)

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
                builder = self._builder()
                calibration, built = builder.recalibrate(snap, progress)
                self._serve(built, builder.labelled)
                return calibration, built.generation
        finally:
            self._reload_lock.release()

    # -- stats -----------------------------------------------------------------------
    def stats(self) -> KBStats:
        in_use = self.values_in_use() if self.snapshot() else {}  # first: resolving the values may warn
        snap = self.snapshot()
        manifest = snap.manifest if snap else {}
        files = manifest.get("files", {})
        by_kind: dict[str, int] = {}
        for meta in files.values():
            by_kind[meta["kind"]] = by_kind.get(meta["kind"], 0) + 1
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
            vector_store=self.search_store.describe(snap.searcher) if snap else "faiss",
            brand=load_brand(self.settings).to_json(),
            cluster=self.cluster.view() if self.cluster is not None else None,
        )

    def values_in_use(self) -> dict[str, Any]:
        """The values in effect, each with where it comes from (``kb stats``, ``kb calibrate``)."""
        values = self._values_now()
        snap = self.snapshot()
        questions = snap.searcher.questions if snap else None
        return values.in_use(len(questions.texts) if questions else 0)
