"""History stores under concurrent writers: SQLite (embedded) beside PostgreSQL (shared).

    .venv/bin/python bench/history.py                   # 20 writers x 200 messages each, ~1 minute
    .venv/bin/python bench/history.py --writers 5 --messages 50

Each writer (a thread) opens a conversation and adds its messages (question/answer pairs with
citations and timings, as an answer is stored) with no pause, all writers at once. SQLite: one
store in one process, the embedded default. PostgreSQL: a throw-away 15 cluster
(``tests/fixtures/postgres_server.py``), the writers split over two stores with their own connection
pools, as two team-server replicas behind a load balancer would be. Then every message is read
back: lost and duplicated are counted, and each conversation's order is checked. Prints
p50/p95/max of one write (``add_message``) and of reading one conversation back.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(stores: list, writers: int, messages: int) -> dict:
    writes: list[float] = []
    errors: list[str] = []
    conversations: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(writers)

    def writer(index: int) -> None:
        store = stores[index % len(stores)]
        name = f"agent{index:02d}"
        local: list[float] = []
        try:
            cid = store.new_conversation(owner=name)
            with lock:
                conversations[name] = cid
            start.wait()
            for i in range(messages):
                role = "user" if i % 2 == 0 else "assistant"
                t0 = time.perf_counter()
                store.add_message(cid, role, f"{name} message {i}", kind=None if role == "user" else "grounded",
                                  citations=[] if role == "user" else [{"number": 1, "source": "faq.md", "score": 0.8}],
                                  timings={"total_ms": 900.0}, asked_by=name)
                local.append((time.perf_counter() - t0) * 1000)
        except Exception as exc:  # noqa: BLE001 - counted in the table
            with lock:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
        with lock:
            writes.extend(local)

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    reads: list[float] = []
    lost = duplicated = out_of_order = 0
    for name, cid in conversations.items():
        t0 = time.perf_counter()
        stored = [m.content for m in stores[-1].messages(cid)]
        reads.append((time.perf_counter() - t0) * 1000)
        expected = [f"{name} message {i}" for i in range(messages)]
        lost += len(set(expected) - set(stored))
        duplicated += len(stored) - len(set(stored))
        out_of_order += stored != expected and not (set(expected) - set(stored)) and len(stored) == len(set(stored))
    return {"writes": writes, "reads": reads, "errors": errors, "lost": lost, "duplicated": duplicated,
            "out_of_order": out_of_order, "seconds": elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=20)
    parser.add_argument("--messages", type=int, default=200, help="Messages per writer.")
    args = parser.parse_args()

    from fixtures.postgres_server import PostgresServer

    from supportdesk.cpu import describe
    from supportdesk.history import HistoryStore

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        store = HistoryStore(Path(folder) / "history.sqlite3")
        rows.append(("SQLite (one process)", run([store], args.writers, args.messages)))
        store.close()
    server = PostgresServer().start()
    try:
        pool = max(2, args.writers // 2)
        replicas = [HistoryStore(server.url, pool_size=pool), HistoryStore(server.url, pool_size=pool)]
        rows.append((f"PostgreSQL 15 (2 replicas, pool {pool} each)", run(replicas, args.writers, args.messages)))
        for replica in replicas:
            replica.close()
    finally:
        server.stop()

    total = args.writers * args.messages
    print(f"\nhistory stores, {args.writers} concurrent writers x {args.messages} messages ({total} writes)")
    print(f"CPU: {describe()}")
    print("| store | write p50 / p95 / max (ms) | read a conversation p50 / p95 (ms) | writes/s | lost | duplicated "
          "| out of order | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for label, r in rows:
        w, rd = r["writes"], r["reads"]
        print(f"| {label} | {pct(w, .5):.2f} / {pct(w, .95):.2f} / {max(w) if w else float('nan'):.1f} "
              f"| {pct(rd, .5):.2f} / {pct(rd, .95):.2f} | {len(w) / r['seconds']:.0f} | {r['lost']} "
              f"| {r['duplicated']} | {r['out_of_order']} | {len(r['errors'])} |")
        for error in r["errors"][:5]:
            print(f"  error: {error}")


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
