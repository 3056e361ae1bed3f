"""Persisted index generations: a FAISS index, chunk texts as JSON lines, a signed manifest.

Layout under ``<data_dir>/index``::

    CURRENT              name of the generation being served (replaced with os.replace)
    .key                 per-data-dir secret used to sign manifests (mode 0600)
    .lock                held by the one process that is writing a generation
    gen-<stamp>/         index.faiss, chunks.jsonl, manifest.json

No file here is ever unpickled: LangChain's own ``save_local`` pickles its docstore, and a
pickle runs code when loaded, so a planted one would execute. We write the FAISS index with
``faiss.write_index`` and the chunk texts and metadata as JSON lines, and rebuild the
LangChain store from them on load. Generations of the old pickled format (1) are refused
with a message to rebuild. The manifest's HMAC and checksums still catch edited or foreign
files, so a damaged index is reported instead of half-loaded.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.embeddings import Embeddings

from supportdesk.checksum import sha256_file
from supportdesk.private import private_dir, private_tree, write_private_text

if TYPE_CHECKING:
    from supportdesk.kb.search import Searcher
    from supportdesk.settings import RetrievalSettings

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
FORMAT = 2
PICKLE_FORMAT = 1
INDEX_FILES = ("index.faiss", "chunks.jsonl")
REBUILD = "rebuild with 'supportdesk kb build --force'"


class IndexIntegrityError(RuntimeError):
    """A persisted index that this app did not write, or that changed since: never loaded."""


class IndexBusy(RuntimeError):
    """Another process is writing a generation in the same data dir."""


def cosine_relevance(score: float) -> float:
    """Inner product of normalised vectors is cosine; show it in [0, 1]."""
    return max(0.0, min(1.0, float(score)))


def new_vectorstore(embedder: Embeddings, dim: int) -> FAISS:
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore

    return FAISS(
        embedding_function=embedder,
        index=faiss.IndexFlatIP(dim),
        docstore=InMemoryDocstore(),
        index_to_docstore_id={},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        relevance_score_fn=cosine_relevance,
    )


def clone_vectorstore(store: FAISS) -> FAISS:
    """A deep copy to edit while the original keeps serving searches."""
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore

    return FAISS(
        embedding_function=store.embedding_function,
        index=faiss.clone_index(store.index),
        docstore=InMemoryDocstore(dict(store.docstore._dict)),  # type: ignore[attr-defined]
        index_to_docstore_id=dict(store.index_to_docstore_id),
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        relevance_score_fn=cosine_relevance,
    )


class GenerationStore:
    """Reads and writes index generations under one folder."""

    keep_generations = 2

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- signing -------------------------------------------------------------------------
    def _key(self) -> bytes:
        path = self.root / ".key"
        if not path.exists():
            private_dir(self.root)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            os.replace(tmp, path)
        return path.read_bytes()

    def owner_tag(self) -> str:
        """A short name for this data dir's index, stable and distinct from another data dir's (derived
        from its secret key, which it does not reveal): what it publishes elsewhere carries it."""
        return hashlib.sha256(b"supportdesk-owner:" + self._key()).hexdigest()[:10]

    def _sign(self, manifest: dict[str, Any]) -> str:
        body = json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True).encode()
        return hmac.new(self._key(), body, hashlib.sha256).hexdigest()

    # -- reading -------------------------------------------------------------------------
    def generations(self) -> list[Path]:
        """Generation folders, newest first."""
        if not self.root.is_dir():
            return []
        return sorted((p for p in self.root.glob("gen-*") if p.is_dir()), key=lambda p: p.name, reverse=True)

    def current_dir(self) -> Path | None:
        pointer = self.root / CURRENT
        if not pointer.exists():
            return None
        try:
            name = pointer.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise IndexIntegrityError(f"{pointer} cannot be read ({exc})") from exc
        if not name.startswith("gen-") or "/" in name or name in ("gen-", "gen-.."):
            raise IndexIntegrityError(f"{pointer} names {name[:80]!r}, which is not an index generation")
        return self.root / name

    def serving_dir(self) -> tuple[Path | None, str | None]:
        """The generation to serve and, when it is not the one CURRENT names, why.

        CURRENT naming a generation that is gone (deleted by hand, a half-restored backup)
        falls back to the newest generation whose manifest verifies.
        """
        named = self.current_dir()
        if named is None or named.is_dir():
            return named, None
        for candidate in self.generations():
            try:
                self.read_manifest(candidate)
            except IndexIntegrityError:
                continue
            return candidate, (f"{self.root / CURRENT} names {named.name}, which is missing; "
                               f"serving {candidate.name}, the newest valid generation")
        raise IndexIntegrityError(f"{self.root / CURRENT} names {named.name}, which is missing, "
                                  "and no other valid generation exists")

    def read_manifest(self, gen_dir: Path) -> dict[str, Any]:
        """The verified manifest of a generation, or ``IndexIntegrityError`` saying what is wrong."""
        path = gen_dir / MANIFEST
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise IndexIntegrityError(f"{path} is missing: this folder was not written by supportdesk") from exc
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"{path} is not a readable manifest ({exc})") from exc
        if not isinstance(manifest, dict):
            raise IndexIntegrityError(
                f"{path} holds a JSON {type(manifest).__name__}, not a manifest object: not written by supportdesk"
            )
        if manifest.get("format") == PICKLE_FORMAT or (gen_dir / "index.pkl").exists():
            raise IndexIntegrityError(
                f"{gen_dir} is an index in the old pickled format, which supportdesk no longer loads "
                f"(a pickle can run code); {REBUILD}"
            )
        if manifest.get("format") != FORMAT:
            raise IndexIntegrityError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT}")
        signature = str(manifest.get("signature", ""))
        if not hmac.compare_digest(signature, self._sign(manifest)):
            raise IndexIntegrityError(
                f"{path} is not signed by this data dir: refusing to load an index written elsewhere or edited by hand"
            )
        checksums = manifest.get("checksums")
        for name in INDEX_FILES:
            expected = checksums.get(name) if isinstance(checksums, dict) else None
            actual = sha256_file(gen_dir / name) if (gen_dir / name).is_file() else None
            if expected is None or actual != expected:
                raise IndexIntegrityError(f"{gen_dir / name} does not match its manifest checksum")
        return manifest

    def load(self, gen_dir: Path, embedder: Embeddings) -> tuple[FAISS, dict[str, Any]]:
        """Rebuild the LangChain store from plain files: no pickle anywhere."""
        import faiss
        from langchain_community.docstore.in_memory import InMemoryDocstore
        from langchain_core.documents import Document

        manifest = self.read_manifest(gen_dir)
        try:
            index = faiss.read_index(str(gen_dir / "index.faiss"))
            docs: dict[str, Document] = {}
            order: dict[int, str] = {}
            with (gen_dir / "chunks.jsonl").open(encoding="utf-8") as handle:
                for row, line in enumerate(handle):
                    record = json.loads(line)
                    docs[record["id"]] = Document(page_content=record["text"], metadata=record["metadata"], id=record["id"])
                    order[row] = record["id"]
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise IndexIntegrityError(f"{gen_dir} cannot be read ({type(exc).__name__}: {exc}); {REBUILD}") from exc
        if index.ntotal != len(order):
            raise IndexIntegrityError(f"{gen_dir}: {index.ntotal} vectors but {len(order)} chunks; {REBUILD}")
        store = FAISS(
            embedding_function=embedder,
            index=index,
            docstore=InMemoryDocstore(docs),
            index_to_docstore_id=order,
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
            relevance_score_fn=cosine_relevance,
        )
        return store, manifest

    # -- writing -------------------------------------------------------------------------
    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the data dir's writer lock: two processes never build into one index folder."""
        from filelock import FileLock, Timeout

        private_dir(self.root)
        lock = FileLock(str(self.root / ".lock"), timeout=0, mode=0o600)
        try:
            lock.acquire()
        except Timeout as exc:
            raise IndexBusy(
                f"another supportdesk process is building the index in {self.root}; "
                "try again when it has finished (this one changed nothing)"
            ) from exc
        try:
            yield
        finally:
            lock.release()

    def write(self, store: FAISS, manifest: dict[str, Any]) -> Path:
        """Save a new generation aside, then point CURRENT at it in one rename.

        Call inside ``writing()``: the staging folders it prunes are then only its own.
        """
        import faiss

        def files(staging: Path) -> None:
            faiss.write_index(store.index, str(staging / "index.faiss"))
            with (staging / "chunks.jsonl").open("w", encoding="utf-8") as handle:
                for row in range(store.index.ntotal):
                    doc_id = store.index_to_docstore_id[row]
                    doc = store.docstore.search(doc_id)
                    handle.write(json.dumps({"id": doc_id, "text": doc.page_content, "metadata": doc.metadata},
                                            ensure_ascii=False) + "\n")

        now = time.time_ns()  # sortable names: seconds, then the nanosecond fraction
        name = f"gen-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now / 1e9))}-{now % 1_000_000_000:09d}"
        return self._commit(name, files, manifest)

    def adopt(self, name: str, files: dict[str, bytes], manifest: dict[str, Any]) -> Path:
        """Write a generation another replica built (its files as they are, its name), signed by this
        data dir, and make it current here. Call inside ``writing()``."""
        if not name.startswith("gen-") or "/" in name or set(files) != set(INDEX_FILES):
            raise IndexIntegrityError(f"a shared generation named {name[:80]!r} is not a complete index generation")

        def write_files(staging: Path) -> None:
            for file_name, data in files.items():
                (staging / file_name).write_bytes(data)

        shutil.rmtree(self.root / name, ignore_errors=True)  # a half-adopted copy of the same generation
        clean = {k: v for k, v in manifest.items() if k not in ("signature", "checksums", "format", "generation")}
        return self._commit(name, write_files, clean)

    def _commit(self, name: str, write_files: Callable[[Path], None], manifest: dict[str, Any]) -> Path:
        private_dir(self.root)
        staging = self.root / f".staging-{name}"
        try:
            staging.mkdir(mode=0o700)
            write_files(staging)
            manifest = dict(manifest, format=FORMAT, generation=name)
            manifest["checksums"] = {f: sha256_file(staging / f) for f in INDEX_FILES}
            manifest["signature"] = self._sign(manifest)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True), encoding="utf-8")
            private_tree(staging)
            final = self.root / name
            os.replace(staging, final)
            pointer_tmp = self.root / f".{CURRENT}.tmp{os.getpid()}"
            write_private_text(pointer_tmp, name + "\n")
            os.replace(pointer_tmp, self.root / CURRENT)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune(keep=final)
        return final

    def _prune(self, keep: Path) -> None:
        generations = sorted((p for p in self.root.glob("gen-*") if p.is_dir()), key=lambda p: p.name)
        stale = [p for p in generations if p != keep][: max(0, len(generations) - self.keep_generations)]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        for leftover in self.root.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)


# -- where a generation's searches run ---------------------------------------------------------
PublishProgress = Callable[[int, int, str], None]
"""(done, total, what is being written)."""


class SearchStore(Protocol):
    """Where the serving generation's searches run, beside its files here (every generation has
    its FAISS index and chunks in ``GenerationStore``). Serving asks it for a loaded generation's
    searcher; building publishes each new generation to it before CURRENT names it.
    ``FaissStore``: this process, nothing to publish; ``kb.milvus.MilvusStore``: a Milvus server."""

    name: str

    def serve(self, searcher: Searcher, manifest: dict[str, Any]) -> tuple[Searcher, str | None]:
        """The searcher for a loaded generation and, when it cannot be searched here as set, why."""
        ...

    def holds(self, manifest: dict[str, Any]) -> bool:
        """Was this generation published to this store (a reload with nothing changed keeps it)?"""
        ...

    def publish(self, searcher: Searcher, vectors: Callable[[], np.ndarray], previous: dict[str, Any] | None,
                progress: PublishProgress, owner: Callable[[], str]) -> tuple[Searcher, dict[str, Any]]:
        """Make a new generation current in this store (``previous``: the serving generation's
        manifest, kept for searches in flight); return its searcher and what its manifest records.
        Raises when the store fails: the reload fails and the previous generation keeps serving."""
        ...

    def describe(self, searcher: Searcher) -> str:
        """One line for ``kb stats``: where this searcher's searches run."""
        ...


class FaissStore:
    """``retrieval.store = "faiss"``: searches run on the generation's FAISS index in this process."""

    name = "faiss"

    def serve(self, searcher: Searcher, manifest: dict[str, Any]) -> tuple[Searcher, str | None]:
        return searcher, None

    def holds(self, manifest: dict[str, Any]) -> bool:
        return True

    def publish(self, searcher: Searcher, vectors: Callable[[], np.ndarray], previous: dict[str, Any] | None,
                progress: PublishProgress, owner: Callable[[], str]) -> tuple[Searcher, dict[str, Any]]:
        return searcher, {}

    def describe(self, searcher: Searcher) -> str:
        return "faiss"


def open_search_store(cfg: RetrievalSettings, embedder: Callable[[], Embeddings]) -> SearchStore:
    """The store ``retrieval.store`` names; ``embedder`` is called only when one needs it."""
    if cfg.store == "milvus":
        from supportdesk.kb.milvus import MilvusStore

        return MilvusStore(cfg, embedder)
    return FaissStore()
