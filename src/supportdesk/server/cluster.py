"""A team server's replica in a cluster (``kb/cluster.py``): wired when the history is on PostgreSQL.

The KB side (one current generation, the reload lock, the heartbeat) is ``kb.cluster.SharedKB``;
here only what the server adds: the adapter a trainer activated on another replica is loaded
from this replica's adapters folder, or the cluster view says this replica lacks it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from supportdesk.kb.cluster import SharedKB

if TYPE_CHECKING:
    from supportdesk.server.core import ServerCore


def shared(core: ServerCore) -> bool:
    settings = core.settings
    return settings.serve.share_kb and settings.history.url.startswith(("postgresql://", "postgres://"))


def attach(core: ServerCore, progress: Callable[[str], None]) -> SharedKB | None:
    """Join the cluster of replicas sharing this history: adopt (or share, or build) its KB
    generation before the server serves; None with the embedded defaults (one process)."""
    if not shared(core):
        return None
    from supportdesk.history.cluster import PostgresCluster

    settings = core.settings
    state = PostgresCluster(settings.history.url, core.replica, settings.history.connect_timeout_s)
    kb = core.session.kb
    cluster = SharedKB(kb, state, core.replica)
    kb.cluster = cluster
    cluster.adapter_now = lambda: core.session.status().adapter
    cluster.on_adapter = lambda name, by: _follow_adapter(core, cluster, name, by)
    progress(f"joining the replicas sharing {state.engine.location} as {core.replica}")
    cluster.start(progress)
    return cluster


def _follow_adapter(core: ServerCore, cluster: SharedKB, name: str | None, by: str | None) -> None:
    """Another replica's trainer activated ``name``: load it from this replica's adapters folder."""
    if name is not None and name not in core.session.adapters():
        cluster.note = (f"adapter {name} (activated by {by}) is not in this replica's {core.settings.adapters_dir}: "
                        f"still serving {cluster.adapter_now() or 'no adapter'}")
        return

    def switch() -> None:
        try:
            core.session.switch_model(None, name or "none")
            core.model_changed_by = by
            cluster.note = None
        except Exception as exc:  # noqa: BLE001 - the previous model keeps serving; the view says why
            cluster.note = f"adapter {name} (activated by {by}) could not be loaded here: {exc}"

    threading.Thread(target=switch, name="cluster-adapter", daemon=True).start()
