"""The knowledge base in Milvus (``retrieval.store = "milvus"``), through langchain-milvus.

Each index generation is published as its own collection, ``<alias>_<generation>``: a dense
vector field (COSINE, the same MiniLM vectors as FAISS) and a sparse field filled by Milvus's
built-in BM25 function, the lexical half. The text Milvus indexes is the chunk as our BM25
analyses it (``lexical.analyzed``: stemmed, stop words out), and queries are analysed the same
way: Milvus's own analyzers differ between Milvus Lite and a cluster and do not stem by
default, which cost 0.12 MRR on the E-Manual (bench/vector_stores.py). A reload writes the new
collection completely, then the generation is made current (CURRENT here, then the alias in
Milvus); a snapshot searches the collection it was built with, so a search sees the old or the
new generation, never a mix. If Milvus is down during a reload, the reload fails and the old
generation keeps serving. Collections older than the previous generation are dropped.

The two rankings come back here and are fused by ``kb/search.py`` exactly as FAISS's and our
BM25's are, and every hit gets its cosine to the query, so scores mean the same in both stores.
Embedding stays incremental (only changed files are re-embedded; the vectors of unchanged ones
come from the generation's files); the collection itself is written whole per generation.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from supportdesk.kb.chunking import Chunk
from supportdesk.kb.lexical import analyzed
from supportdesk.settings import RetrievalSettings

if TYPE_CHECKING:
    from supportdesk.kb.search import Searcher
    from supportdesk.kb.store import PublishProgress

DENSE, SPARSE, TEXT, PK = "dense", "sparse", "text", "pk"


class MilvusUnavailable(RuntimeError):
    """Milvus could not be reached or refused a request; the message names the URI."""


_LIBRARY_LOGGERS = ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer", "langchain_milvus")


def quiet_libraries() -> None:
    """pymilvus installs its own stderr handlers (``pymilvus.settings``) and logs every failed call
    and reconnection, tracebacks included; langchain-milvus logs before re-raising. When Milvus is
    down that printed dozens of raw lines before our one-line error, which says why: keep them
    silent. (Called after pymilvus is imported: importing it configures those loggers.)"""
    import pymilvus  # noqa: F401 - its import sets up the loggers silenced here

    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL + 1)


def collection_for(alias: str, generation_tag: str) -> str:
    return f"{alias}_{generation_tag}"


class MilvusIndex:
    """One Milvus server and the collections of one knowledge base on it."""

    def __init__(self, cfg: RetrievalSettings, embedder: Embeddings) -> None:
        self.uri = cfg.milvus_uri
        self.alias = cfg.milvus_collection
        self.timeout = cfg.milvus_timeout_s
        self._token = cfg.milvus_token.get_secret_value() if cfg.milvus_token else ""
        self._embedder = embedder
        self._client: Any = None
        self._lock = threading.Lock()
        quiet_libraries()
        self._down: tuple[float, str] | None = None
        """(until when, why): after a failed search, searches go local at once for ``retry_after_s``
        instead of each waiting for the timeout; then Milvus is tried again."""

    retry_after_s = 5.0

    def _connection_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"uri": self.uri, "timeout": self.timeout}
        if self._token:
            args["token"] = self._token
        return args

    def client(self) -> Any:
        """A pymilvus MilvusClient (the one langchain-milvus uses); connected once."""
        with self._lock:
            if self._client is None:
                from pymilvus import MilvusClient

                try:
                    self._client = MilvusClient(**self._connection_args())
                except Exception as exc:
                    raise MilvusUnavailable(f"cannot reach Milvus at {self.uri}: {_first_line(exc)}") from exc
            return self._client

    def forget_client(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110 - a dead connection may not close cleanly
                pass

    # -- publishing a generation -------------------------------------------------------------
    def publish(self, chunks: list[Chunk], vectors: np.ndarray,
                progress: Callable[[int, int], None] = lambda done, total: None, owner: str = "") -> str:
        """Write every chunk into a new collection, named for its owner (the data dir that builds it);
        returns its name. Nothing is made current here."""
        from langchain_milvus import BM25BuiltInFunction, Milvus

        name = collection_for(self.alias, f"{owner}_g{time.time_ns()}" if owner else f"g{time.time_ns()}")
        try:
            store = Milvus(
                embedding_function=self._embedder,
                builtin_function=BM25BuiltInFunction(input_field_names=TEXT, output_field_names=SPARSE),
                vector_field=[DENSE, SPARSE],
                text_field=TEXT,
                primary_field=PK,
                auto_id=False,
                collection_name=name,
                connection_args=self._connection_args(),
                consistency_level="Strong",
                index_params=[{"metric_type": "COSINE", "index_type": "FLAT"},
                              {"metric_type": "BM25", "index_type": "SPARSE_INVERTED_INDEX"}],
            )
            batch = 1000
            for start in range(0, len(chunks), batch):
                part = chunks[start:start + batch]
                store.add_embeddings([analyzed(c.indexed_text) for c in part], vectors[start:start + batch].tolist(),
                                     ids=[c.id for c in part])
                progress(min(start + batch, len(chunks)), len(chunks))
            client = self.client()
            # Sealed segments, loaded: measured on milvus-lite, a search over rows still in the
            # write buffer took 0.6 s at 600 chunks and 6-9 s at 50,000; flushed, 15-25 ms and 0.1-0.2 s.
            client.flush(name, timeout=self.timeout)
            client.load_collection(name, timeout=self.timeout)
            stored = client.get_collection_stats(name, timeout=self.timeout).get("row_count")
            if stored is not None and int(stored) != len(chunks):
                raise MilvusUnavailable(f"Milvus at {self.uri} holds {stored} of {len(chunks)} chunks in {name}")
        except MilvusUnavailable:
            self._drop_quietly(name)
            raise
        except Exception as exc:
            self._drop_quietly(name)
            self.forget_client()
            raise MilvusUnavailable(f"Milvus at {self.uri} failed while writing the new generation: "
                                    f"{_first_line(exc)}") from exc
        return name

    def make_current(self, name: str, keep: str | None = None, owner: str = "") -> None:
        """Point the alias at ``name``; drop this owner's other collections except ``keep`` (the one
        that served until now: searches in flight on it finish). Collections another data dir
        published under the same alias (a second server) are never dropped here."""
        client = self.client()
        try:
            aliases = client.list_aliases(timeout=self.timeout).get("aliases", []) if hasattr(client, "list_aliases") else []
            if self.alias in aliases:
                client.alter_alias(name, self.alias, timeout=self.timeout)
            else:
                try:
                    client.create_alias(name, self.alias, timeout=self.timeout)
                except Exception:  # noqa: BLE001 - it existed after all (another replica): move it
                    client.alter_alias(name, self.alias, timeout=self.timeout)
            for other in client.list_collections(timeout=self.timeout):
                mine = other.startswith(f"{self.alias}_{owner}_g") if owner else other.startswith(f"{self.alias}_g")
                if mine and other not in (name, keep):
                    self._drop_quietly(other)
        except Exception as exc:
            self.forget_client()
            raise MilvusUnavailable(f"Milvus at {self.uri}: cannot point {self.alias} at {name}: "
                                    f"{_first_line(exc)}") from exc

    def has(self, name: str) -> bool:
        try:
            return bool(self.client().has_collection(name, timeout=self.timeout))
        except MilvusUnavailable:
            raise
        except Exception as exc:
            self.forget_client()
            raise MilvusUnavailable(f"cannot reach Milvus at {self.uri}: {_first_line(exc)}") from exc

    def _drop_quietly(self, name: str) -> None:
        try:
            self.client().drop_collection(name, timeout=self.timeout)
        except Exception:  # noqa: BLE001, S110 - best effort: a leftover collection is dropped next time
            pass

    # -- searching ---------------------------------------------------------------------------
    def _search(self, name: str, data: Any, field: str, metric: str, k: int) -> list[tuple[str, float]]:
        down = self._down
        if down is not None and time.monotonic() < down[0]:
            raise MilvusUnavailable(down[1])
        def run() -> Any:
            return self.client().search(name, data=[data], anns_field=field, limit=k,
                                        search_params={"metric_type": metric}, output_fields=[PK], timeout=self.timeout)

        try:
            try:
                result = run()
            except Exception as exc:
                if "load" not in str(exc).lower():
                    raise
                # A restarted Milvus serves a collection again once it is loaded into memory.
                self.client().load_collection(name, timeout=self.timeout)
                result = run()
        except MilvusUnavailable:
            raise
        except Exception as exc:
            self.forget_client()
            why = f"Milvus at {self.uri} did not answer a search: {_first_line(exc)}"
            self._down = (time.monotonic() + self.retry_after_s, why)
            raise MilvusUnavailable(why) from exc
        self._down = None
        return [(str(hit.get("id", hit.get(PK))), float(hit["distance"])) for hit in result[0]]

    def dense(self, name: str, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine) best first."""
        return self._search(name, np.asarray(vector, dtype=np.float32).tolist(), DENSE, "COSINE", k)

    def lexical(self, name: str, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, BM25 score) best first, from Milvus's BM25 function (some builds report it negated)."""
        terms = analyzed(query)
        if not terms:
            return []
        hits = [(cid, abs(score)) for cid, score in self._search(name, terms, SPARSE, "BM25", k)]
        return sorted(hits, key=lambda h: -h[1])


class MilvusRankings:
    """What a Searcher asks of a remote store: two rankings of chunk ids for one collection."""

    def __init__(self, index: MilvusIndex, collection: str) -> None:
        self.index = index
        self.collection = collection

    def dense(self, vector: np.ndarray, k: int) -> list[tuple[str, float]]:
        return self.index.dense(self.collection, vector, k)

    def lexical(self, query: str, k: int) -> list[tuple[str, float]]:
        return self.index.lexical(self.collection, query, k) if query.strip() else []


class MilvusStore:
    """``retrieval.store = "milvus"`` behind the interface serving and building use (``kb.store.SearchStore``):
    a generation is published as its own collection, then searched there."""

    name = "milvus"

    def __init__(self, cfg: RetrievalSettings, embedder: Callable[[], Embeddings]) -> None:
        self._cfg = cfg
        self._embedder = embedder
        self._index: MilvusIndex | None = None

    @property
    def index(self) -> MilvusIndex:
        """The Milvus server (connected on first use)."""
        if self._index is None:
            self._index = MilvusIndex(self._cfg, self._embedder())
        return self._index

    def serve(self, searcher: Searcher, manifest: dict[str, Any]) -> tuple[Searcher, str | None]:
        """The generation's Milvus collection ranks its searches when there is one; else this process does."""
        collection = (manifest.get("milvus") or {}).get("collection")
        if not collection:
            return searcher, ("retrieval.store is 'milvus' but this generation was built for FAISS: searching here "
                              "until the next 'supportdesk kb build' publishes it to Milvus")
        warning = None
        try:
            if not self.index.has(collection):
                return searcher, (f"Milvus at {self.index.uri} has no collection {collection}: searching here "
                                  "until the next 'supportdesk kb build --force'")
        except MilvusUnavailable as exc:
            warning = f"{exc}; searching this process's copy of the same generation until it answers"
        return searcher.with_remote(MilvusRankings(self.index, collection)), warning

    def holds(self, manifest: dict[str, Any]) -> bool:
        on_milvus = manifest.get("milvus") or {}
        return bool(on_milvus.get("collection")) and on_milvus.get("alias") == self.index.alias

    def publish(self, searcher: Searcher, vectors: Callable[[], np.ndarray], previous: dict[str, Any] | None,
                progress: PublishProgress, owner: Callable[[], str]) -> tuple[Searcher, dict[str, Any]]:
        """Write the generation into its own collection and point the alias at it (the new collection
        is complete and current before CURRENT names it). Milvus down: raises."""
        matrix = vectors()
        milvus = self.index
        total = len(searcher.chunks)
        where = f"writing to Milvus at {milvus.uri}"
        progress(0, total, where)
        tag = owner()
        name = milvus.publish(searcher.chunks, matrix, lambda done, n: progress(done, n, where), owner=tag)
        keep = ((previous or {}).get("milvus") or {}).get("collection")
        try:
            milvus.make_current(name, keep=keep, owner=tag)
        except Exception:
            milvus._drop_quietly(name)
            raise
        return searcher.with_remote(MilvusRankings(milvus, name)), {"milvus": {"collection": name, "alias": milvus.alias}}

    def describe(self, searcher: Searcher) -> str:
        remote = searcher.remote
        if remote is None:
            return "faiss"
        line = f"milvus {remote.collection} at {remote.index.uri} (alias {remote.index.alias})"
        if searcher.remote_error:
            line += f" — last search: {searcher.remote_error}"
        return line


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
