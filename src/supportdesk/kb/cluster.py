"""Replicas that agree: one current KB generation for every team server sharing a store.

Team-server replicas (``supportdesk serve``) that share a history database (PostgreSQL) share the
knowledge base too. A replica that builds a generation (a reload) puts it in the shared store
whole — its FAISS index and its chunks (texts, metadata: the BM25 side is rebuilt from them in
memory, never re-embedded), its manifest (calibration, question vectors, the Milvus collection
its searches run in) — and names it current, in one transaction that notifies the others. Each
replica learns of it (a notification, or a poll every ``poll_s`` when one is missed), writes
it into its own data dir as a generation signed there, and swaps it in as a local reload does:
answers in flight finish on the old snapshot.

Reloads are serialised across the replicas by a lock in the shared store that dies with its
holder's connection (a replica killed mid-reload frees it, and the current generation stays the
previous one: a generation becomes current only at its last step). Each replica says what it
serves with a heartbeat, so every one can show the cluster: the current generation, who serves
it and who is still on an older one. The active adapter is shared the same way.

This module is the logic; ``ClusterState`` is what it needs of the shared store
(``history/cluster.py`` implements it on PostgreSQL). Nothing here imports the server.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from supportdesk.kb.build import embedded_texts
from supportdesk.kb.store import INDEX_FILES

if TYPE_CHECKING:
    from supportdesk.kb.index import KnowledgeBase

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
GONE_AFTER_S = 15.0
"""A replica whose last heartbeat is older than this is listed as gone."""


class ReloadHeld(RuntimeError):
    """Another replica holds the cluster's reload lock; the message names who."""


@dataclass(frozen=True)
class SharedGeneration:
    generation: str
    manifest: dict[str, Any]
    files: dict[str, bytes]
    built_by: str | None
    replica: str | None


class ClusterState(Protocol):
    """What replicas share (``history.cluster.PostgresCluster``)."""

    def try_lock(self, by: str) -> str | None:
        """Take the reload lock for ``by``; None when taken, else who holds it."""
        ...

    def unlock(self) -> None: ...

    def holder(self) -> str | None:
        """Who holds the reload lock now (None: nobody)."""
        ...

    def get(self, key: str) -> tuple[str, str | None, float] | None:
        """(value, set by, at) of a shared fact."""
        ...

    def set(self, key: str, value: str, by: str | None, notify: dict[str, Any] | None = None) -> None: ...

    def cluster_id(self) -> str: ...

    def fetch(self, generation: str) -> dict[str, Any] | None:
        """A stored generation's row: manifest (JSON text), vectors, texts (zlib), built_by, replica."""
        ...

    def publish(self, row: dict[str, Any], by: str | None) -> None:
        """Store a generation and make it current, one transaction; the others are notified."""
        ...

    def heartbeat(self, generation: str | None, adapter: str | None, embedded: int, note: str | None) -> None: ...

    def replicas(self) -> list[dict[str, Any]]: ...

    def watch(self, on_event: Callable[[dict[str, Any] | None], None], stop: threading.Event,
              tick_s: float) -> None:
        """Call ``on_event(payload)`` per notification and ``on_event(None)`` every ``tick_s``, until ``stop``."""
        ...

    def leave(self) -> None: ...


def pack(kb: KnowledgeBase, generation: str) -> dict[str, Any]:
    """The row that carries a local generation to the other replicas (files compressed)."""
    gen_dir = kb.store.root / generation
    manifest = kb.store.read_manifest(gen_dir)
    return {
        "generation": generation,
        "manifest": json.dumps(manifest, sort_keys=True),
        "vectors": zlib.compress((gen_dir / "index.faiss").read_bytes(), 1),
        "texts": zlib.compress((gen_dir / "chunks.jsonl").read_bytes(), 6),
        "chunks": sum(len(meta.get("chunk_ids", [])) for meta in manifest.get("files", {}).values()),
    }


def unpack(row: dict[str, Any]) -> SharedGeneration:
    files = {"index.faiss": zlib.decompress(row["vectors"]), "chunks.jsonl": zlib.decompress(row["texts"])}
    assert set(files) == set(INDEX_FILES)
    return SharedGeneration(row["generation"], json.loads(row["manifest"]), files, row.get("built_by"),
                            row.get("replica"))


class SharedKB:
    """One replica's side of the shared generation (owned by its ``KnowledgeBase`` as ``kb.cluster``)."""

    poll_s = 2.0
    """A missed notification is caught up within this (the state is read again)."""

    def __init__(self, kb: KnowledgeBase, state: ClusterState, replica: str) -> None:
        self.kb = kb
        self.state = state
        self.replica = replica
        self._held = 0
        self._held_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_poll = 0.0
        self._last_beat = 0.0
        self.reloaded_by: str | None = None
        """Who made the generation this replica serves ("ada on replica-a")."""
        self.note: str | None = None
        """The last thing that went wrong sharing (shown in the cluster view)."""
        self.adopted = 0
        """Generations this replica took from another (none of them embedded here)."""
        self.adopt_seconds: float | None = None
        """How long the last adoption took (fetch to serving)."""
        self.adapter_now: Callable[[], str | None] = lambda: None
        self.on_adapter: Callable[[str | None, str | None], None] = lambda name, by: None
        self._adapter_seen: tuple[str, float] | None = None
        self._view: dict[str, Any] = {}
        self._owner: str | None = None

    # -- the reload lock -----------------------------------------------------------------------
    def acquire(self, by: str | None) -> None:
        """Hold the cluster's reload lock (nested holds in this process count); ReloadHeld naming who has it."""
        with self._held_lock:
            if self._held:
                self._held += 1
                return
            holder = self.state.try_lock(f"{by or 'an admin'} on {self.replica}")
            if holder is not None:
                raise ReloadHeld(f"a reload started by {holder} is running: its result shows on every status line "
                                 "when it is done")
            self._held = 1

    def release(self) -> None:
        with self._held_lock:
            self._held -= 1
            if self._held == 0:
                self.state.unlock()

    @property
    def holding(self) -> bool:
        return self._held > 0

    def holder(self) -> str | None:
        """Who is reloading anywhere in the cluster (None: nobody, or this replica)."""
        return None if self.holding else self._view.get("reloading")

    def owner_tag(self) -> str:
        """What every replica's builds name their Milvus collections with: one cluster, one set of collections."""
        if self._owner is None:
            self._owner = "c" + self.state.cluster_id()[:9]
        return self._owner

    # -- generations -------------------------------------------------------------------------
    def current(self) -> tuple[str, str | None] | None:
        found = self.state.get("kb_generation")
        return (found[0], found[1]) if found else None

    def publish(self, generation: str, by: str | None) -> None:
        """Make a generation this replica built (or serves) the cluster's current one."""
        row = pack(self.kb, generation)
        row.update(built_by=by, replica=self.replica)
        self.state.publish(row, by)
        self.reloaded_by = f"{by} on {self.replica}" if by else self.replica
        self._last_beat = self._last_poll = 0.0  # the next tick (within a second) says so and reads the view

    def _behind(self) -> bool:
        current = self.current()
        snap = self.kb._snapshot
        return current is not None and (snap is None or snap.generation != current[0])

    def sync(self) -> bool:
        """Serve the cluster's current generation if this replica does not (called with the local
        reload lock held). True when one was adopted."""
        current = self.current()
        snap = self.kb._snapshot
        serving = snap.generation if snap is not None else self.kb.local_generation()
        if current is None or current[0] == serving:
            return False
        row = self.state.fetch(current[0])
        if row is None:
            self.note = f"the cluster names generation {current[0]}, which it does not hold"
            return False
        started = time.perf_counter()
        shared = unpack(row)
        self.kb.adopt_generation(shared.generation, shared.files, shared.manifest)
        self.adopt_seconds = round(time.perf_counter() - started, 3)
        self.adopted += 1
        self._last_beat = self._last_poll = 0.0
        who = shared.built_by or current[1]
        self.reloaded_by = f"{who} on {shared.replica}" if who and shared.replica else (who or shared.replica)
        self.note = None
        return True

    def start(self, progress: Callable[[str], None] = lambda s: None, wait_s: float = 1800.0) -> None:
        """At start: adopt the cluster's generation; with none, share this replica's (building it if
        there is none here either). Waits while another replica holds the lock (its first build)."""
        deadline = time.monotonic() + wait_s
        told = False
        while True:
            try:
                self.acquire("start-up")
                break
            except ReloadHeld as exc:
                if time.monotonic() > deadline:
                    raise
                if not told:
                    progress(f"waiting for the cluster's reload lock ({exc})")
                    told = True
                time.sleep(0.5)
        try:
            if self.current() is not None:
                progress("loading the embedding model")
                self.kb.embedder_info  # noqa: B018 - loaded first: an adoption itself embeds nothing
                with self.kb.reload_lock_held():
                    if self.sync():
                        progress(f"adopted the cluster's KB generation {self.current()[0]} "  # type: ignore[index]
                                 f"in {self.adopt_seconds} s (nothing embedded)")
            else:
                snap = self.kb.snapshot()
                if snap is not None and snap.generation:
                    self.publish(snap.generation, None)
                    progress(f"shared this replica's KB generation {snap.generation} with the cluster")
                else:
                    progress("building the knowledge base index for the cluster (first run)")
                    report = self.kb.reload(lambda p: progress(f"indexing: {p.stage} {p.done}/{p.total}"),
                                            by="first start")
                    if not report.ok:
                        raise RuntimeError(report.error or "index build failed")
        finally:
            self.release()
        self._tick(force=True)

    # -- following the others ----------------------------------------------------------------
    def follow(self) -> None:
        """Listen for the others' changes (a thread) until ``stop``."""
        self._thread = threading.Thread(target=self._watch, name="cluster-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        self.state.watch(self._on_event, self._stop, min(self.poll_s, HEARTBEAT_S) / 2)

    def _on_event(self, payload: dict[str, Any] | None) -> None:
        try:
            self._tick(force=payload is not None)
        except Exception as exc:  # noqa: BLE001 - the replica keeps serving what it has; says why
            self.note = f"{type(exc).__name__}: {exc}"
            log.warning("cluster: %s", self.note)

    def _tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_poll >= self.poll_s:
            self._last_poll = now
            adopted = False
            if not self.holding and self._behind():  # the local locks only when there is something to adopt
                with self.kb.reload_lock_tried() as got:
                    if got:
                        adopted = self.sync()
            self._follow_adapter()
            if adopted:
                self._beat()
            self._view = self._read_view()
        if force or now - self._last_beat >= HEARTBEAT_S:
            self._beat()

    def _beat(self) -> None:
        self._last_beat = time.monotonic()
        snap = self.kb._snapshot
        self.state.heartbeat(snap.generation if snap else None, self.adapter_now(), embedded_texts(), self.note)

    def _follow_adapter(self) -> None:
        found = self.state.get("adapter")
        if found is None:
            return
        value, by, at = found
        seen, self._adapter_seen = self._adapter_seen, (value, at)
        if seen == (value, at):
            return
        if by is not None and (by == self.replica or by.endswith(f" on {self.replica}")):
            return  # activated here
        if (value or None) != self.adapter_now():
            self.on_adapter(value or None, by)

    def set_adapter(self, name: str | None, by: str | None) -> None:
        """A trainer activated an adapter here: every replica follows."""
        self.state.set("adapter", name or "", f"{by} on {self.replica}" if by else self.replica,
                       notify={"kind": "adapter", "adapter": name, "by": by, "replica": self.replica})

    # -- the cluster view --------------------------------------------------------------------
    def _read_view(self) -> dict[str, Any]:
        current = self.state.get("kb_generation")
        now = time.time()
        replicas = []
        for row in self.state.replicas():
            age = now - float(row["heartbeat_at"])
            if age > GONE_AFTER_S * 20:
                continue  # long gone: not listed
            replicas.append({"replica": row["replica"], "generation": row["generation"], "adapter": row["adapter"],
                             "heartbeat_s": round(age, 1), "alive": age <= GONE_AFTER_S,
                             "embedded": row["embedded"], "note": row["note"]})
        return {"current": current[0] if current else None, "current_by": current[1] if current else None,
                "reloading": self.state.holder(), "replicas": replicas}

    def view(self, ages: bool = True) -> dict[str, Any]:
        """The cluster as this replica last read it: the current generation, who serves it, who lags.
        Without ``ages`` (the status feed), no heartbeat ages: the feed sends a status only when it changes."""
        view = dict(self._view)
        if not ages:
            view["replicas"] = [{k: v for k, v in r.items() if k != "heartbeat_s"} for r in view.get("replicas", [])]
        current = view.get("current")
        alive = [r for r in view.get("replicas", []) if r["alive"]]
        view.update(
            replica=self.replica,
            serving=[r["replica"] for r in alive if r["generation"] == current],
            behind=[f"{r['replica']} ({r['generation']})" for r in alive if r["generation"] != current],
            gone=[r["replica"] for r in view.get("replicas", []) if not r["alive"]],
            adopted=self.adopted,
            adopt_seconds=self.adopt_seconds,
            embedded=embedded_texts(),
            note=self.note,
        )
        if self.holding:
            view["reloading"] = view.get("reloading") or self.replica
        return view

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self.kb.cluster is self:  # the KB outlives its server (tests, an app): it reloads on its own again
            self.kb.cluster = None
        try:
            self.state.leave()
        except Exception:  # noqa: BLE001, S110 - the heartbeat ages out anyway
            pass
        close = getattr(self.state, "close", None)
        if callable(close):
            close()


__all__ = ["ClusterState", "ReloadHeld", "SharedGeneration", "SharedKB", "pack", "unpack"]
