"""Load test of the team server: N simulated agents on loopback, one admin reload mid-run.

    .venv/bin/python bench/load.py                  # 20 agents x 3 questions, ~4 minutes on 2 cores
    .venv/bin/python bench/load.py --agents 5 --questions 2
    .venv/bin/python bench/load.py --replicas 2     # two servers on one PostgreSQL + milvus-lite (issue 31)

What it does: copies the sample KB to a temp folder, builds its index, creates one token per
agent plus an admin, starts ``supportdesk serve`` (the real command, embedded model) on a
free loopback port and times start -> ready. Each agent (a thread with its own client) asks a
seeded mix of small talk, product and unanswerable questions with think time between them.
Half-way through, the admin adds a document and reloads the KB. A prober searches every
0.5 s throughout. At the end the server's history is checked: every question asked and every
answer received is stored exactly once, with the agent who asked.

With ``--replicas 2`` a throw-away PostgreSQL (history, tokens, the shared KB generation) and a
milvus-lite server are started, then two ``serve`` replicas with their own data dirs; agents
alternate between them, the admin reloads through the first, and the second is watched: how
soon it finds the new document, and how many texts it embedded for that reload (none).

Prints p50/p95 of queue wait, first token (as the client sees it) and total, search latency,
throughput, errors; the CPU and its flags head the table.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

SMALL_TALK = ["Hi there!", "Thanks, that helped a lot.", "You've been great, have a nice day!",
              "Hello, anyone there?", "Cheers for the quick reply."]
PRODUCT = ["How many days do I have to return a router?", "What does the amber light on my Aerie mean?",
           "How do I factory reset my Perch satellite?", "Is the Guardian subscription cancellable any time?",
           "What is the warranty on Kestrel hardware?", "My internet keeps dropping, what should I check first?",
           "How do I set up the Aerie AX3000?", "Can I pause the Guardian plan while travelling?"]
UNANSWERABLE = ["Do you sell electric scooters?", "What is the share price of Kestrel Networks today?",
                "Can you book me a table for two tonight?"]


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _exe() -> list[str]:
    exe = ROOT / ".venv" / "bin" / "supportdesk"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "supportdesk"]


def supportdesk(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([*_exe(), *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"supportdesk {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--questions", type=int, default=3, help="Questions per agent.")
    parser.add_argument("--think", type=float, default=2.0, help="Most seconds an agent thinks between questions.")
    parser.add_argument("--max-tokens", type=int, default=128, help="Most tokens per answer (server setting).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 2),
                        help="2: two servers sharing a PostgreSQL and a milvus-lite (started here).")
    args = parser.parse_args()

    from supportdesk.client.remote import RemoteSession
    from supportdesk.cpu import describe
    from supportdesk.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="supportdesk-load-"))
    kb, data = work / "kb", work / "data"
    shutil.copytree(ROOT / "kb", kb)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTDESK_")}
    env.update({"SUPPORTDESK_DATA_DIR": str(data), "SUPPORTDESK_KB_DIR": str(kb),
                "SUPPORTDESK_MODEL__MAX_TOKENS": str(args.max_tokens), "SUPPORTDESK_TUI__BUILD_SAMPLE_ADAPTER": "false"})
    print(f"CPU: {describe()}", flush=True)
    shared: list = []
    if args.replicas > 1:
        sys.path.insert(0, str(ROOT / "tests"))
        from fixtures.milvus_server import MilvusServer
        from fixtures.postgres_server import PostgresServer

        shared = [PostgresServer().start(), MilvusServer().start()]
        env.update({"SUPPORTDESK_HISTORY__URL": shared[0].url, "SUPPORTDESK_RETRIEVAL__STORE": "milvus",
                    "SUPPORTDESK_RETRIEVAL__MILVUS_URI": shared[1].uri, "SUPPORTDESK_SERVE__REPLICA_NAME": "A"})
        print(f"shared stores: PostgreSQL {shared[0].url}, milvus-lite {shared[1].uri}", flush=True)
    print("building the index of the sample KB...", flush=True)
    supportdesk(env, "kb", "build")
    names = [f"agent{i:02d}" for i in range(args.agents)]
    tokens = {name: supportdesk(env, "serve", "token", "create", "--name", name, "--role", "agent") for name in names}
    admin = supportdesk(env, "serve", "token", "create", "--name", "admin", "--role", "admin")

    import httpx

    def start_server(server_env: dict[str, str]) -> tuple[subprocess.Popen, str, float]:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        server = subprocess.Popen([*_exe(), "serve", "--port", str(port)], env=server_env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None:
                raise SystemExit(f"the server exited: {server.stderr.read() if server.stderr else ''}")
            if time.perf_counter() - started > 300:
                raise SystemExit("the server did not become ready in 300 s")
            time.sleep(0.05)
        ready_s = time.perf_counter() - started
        print(f"server ready in {ready_s:.1f} s at {url}", flush=True)
        return server, url, ready_s

    server, url, ready_s = start_server(env)
    servers, urls, readies = [server], [url], [ready_s]
    if args.replicas > 1:
        second, second_url, second_ready = start_server(dict(env, SUPPORTDESK_DATA_DIR=str(work / "data-B"),
                                                             SUPPORTDESK_SERVE__REPLICA_NAME="B"))
        servers.append(second)
        urls.append(second_url)
        readies.append(second_ready)

    def embedded_on(where: str) -> int:
        return int(httpx.get(f"{where}/v1/status", headers={"Authorization": f"Bearer {admin}"},
                             timeout=10).json().get("embedded_texts", 0))

    settings = Settings(data_dir=data, kb_dir=kb)
    rng = random.Random(args.seed)
    plans = {name: [rng.choice([SMALL_TALK, PRODUCT, PRODUCT, UNANSWERABLE]) for _ in range(args.questions)]
             for name in names}
    plans = {name: [rng.choice(group) for group in groups] for name, groups in plans.items()}
    records: list[dict] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    asked = threading.Semaphore(0)

    def agent(name: str) -> None:
        client = RemoteSession(settings, urls[names.index(name) % len(urls)], tokens[name])
        local = random.Random(f"{args.seed}-{name}")
        time.sleep(local.uniform(0, args.think))
        for question in plans[name]:
            t0 = time.perf_counter()
            first = None
            try:
                answer = client.ask(question)
                for _piece in answer:
                    if first is None:
                        first = time.perf_counter() - t0
                total = time.perf_counter() - t0
                result = answer.result
                with lock:
                    records.append({"agent": name, "question": question, "answer": result.answer, "kind": result.kind,
                                    "queue_ms": result.timings.get("queue_ms"), "first_s": first, "total_s": total,
                                    "conversation": client.conversation_id, "message_id": answer.message_id})
            except Exception as exc:  # noqa: BLE001 - counted and shown, the run goes on
                with lock:
                    errors.append(f"{name}: {type(exc).__name__}: {exc}")
            asked.release()
            time.sleep(local.uniform(0.5, args.think))
        client.close()

    searches: list[float] = []

    def prober() -> None:
        client = RemoteSession(settings, urls[-1], tokens[names[0]])
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                client.search(rng.choice(PRODUCT))
                searches.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:  # noqa: BLE001
                errors.append(f"search: {exc}")
            stop.wait(0.5)
        client.close()

    reload_result: dict = {}

    def admin_reload() -> None:
        total = args.agents * args.questions
        for _ in range(total // 2):
            asked.acquire()
        (kb / "policies" / "loyalty-points.md").write_text(
            "# Loyalty points\n\nEvery Kestrel purchase earns ten loyalty points per dollar. Points expire after "
            "two years and can be spent on accessories in the Roost app.\n", encoding="utf-8")
        client = RemoteSession(settings, url, admin)
        before = embedded_on(urls[-1])
        t0 = time.perf_counter()
        try:
            report = client.reload_kb()
            reload_result.update(ok=report.ok, added=report.added, seconds=time.perf_counter() - t0,
                                 error=report.error)
        except Exception as exc:  # noqa: BLE001
            reload_result.update(ok=False, error=str(exc))
        client.close()
        if len(urls) > 1:  # the other replica: how soon it finds the new document, what it embedded for it
            other = RemoteSession(settings, urls[-1], admin)
            done = time.perf_counter()
            while time.perf_counter() - done < 30:
                hits = other.search("loyalty points per dollar", k=5)["hits"]
                if any(h["source"] == "policies/loyalty-points.md" for h in hits):
                    reload_result["seen_on_b_s"] = time.perf_counter() - done
                    break
                time.sleep(0.05)
            other.close()
            reload_result["b_embedded"] = embedded_on(urls[-1]) - before

    run_started = time.perf_counter()
    threads = [threading.Thread(target=agent, args=(name,)) for name in names]
    probe = threading.Thread(target=prober)
    reloader = threading.Thread(target=admin_reload)
    for t in [*threads, probe, reloader]:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    probe.join()
    reloader.join(300)
    run_s = time.perf_counter() - run_started

    # The history: every question and every answer stored exactly once, with its agent.
    audit = RemoteSession(settings, url, admin)
    stored_q: Counter = Counter()
    stored_a: Counter = Counter()
    for conversation in audit.history.conversations(limit=100_000, everyone=True):
        for m in audit.history.messages(conversation.id):
            key = (m.asked_by, conversation.id, m.content if m.role == "user" else m.id)
            (stored_q if m.role == "user" else stored_a)[key] += 1
    audit.close()
    sent_q = Counter((r["agent"], r["conversation"], r["question"]) for r in records)
    sent_a = Counter((r["agent"], r["conversation"], r["message_id"]) for r in records)
    lost = sum((sent_q - stored_q).values()) + sum((sent_a - stored_a).values())
    duplicated = sum(1 for k, n in stored_q.items() if n > sent_q.get(k, 0)) + \
        sum(1 for k, n in stored_a.items() if n > sent_a.get(k, 0))
    for each in servers:
        each.terminate()
        try:
            each.wait(15)
        except subprocess.TimeoutExpired:
            each.kill()
    for store in shared:
        store.stop()

    generated = [r for r in records if r["queue_ms"] is not None]
    kinds = Counter(r["kind"] for r in records)
    rows = [
        ("agents x questions", f"{args.agents} x {args.questions} (max {args.max_tokens} tokens per answer)"),
        ("answers", f"{len(records)} ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))})"),
        ("errors", str(len(errors))),
        ("lost / duplicated in history", f"{lost} / {duplicated}"),
        ("reload mid-run", f"{'ok' if reload_result.get('ok') else 'FAILED'} ({reload_result.get('seconds', 0):.1f} s, "
                           f"added {reload_result.get('added')}) {reload_result.get('error') or ''}".strip()),
        ("server start -> ready", f"{ready_s:.1f} s (existing index)"
                                  + (f"; replica B {readies[1]:.1f} s (adopted A's generation)" if len(readies) > 1
                                     else "")),
        ("queue wait p50 / p95", (f"{pct([r['queue_ms'] / 1000 for r in generated], .5):.1f} / "
                                  f"{pct([r['queue_ms'] / 1000 for r in generated], .95):.1f} s")),
        ("first token p50 / p95", (f"{pct([r['first_s'] for r in records if r['first_s']], .5):.1f} / "
                                   f"{pct([r['first_s'] for r in records if r['first_s']], .95):.1f} s")),
        ("total p50 / p95", (f"{pct([r['total_s'] for r in records], .5):.1f} / "
                             f"{pct([r['total_s'] for r in records], .95):.1f} s")),
        ("search p50 / p95 (under load)", f"{pct(searches, .5):.0f} / {pct(searches, .95):.0f} ms ({len(searches)} searches)"),
        *([("replicas", (f"{len(urls)} on one PostgreSQL + milvus-lite; reload through A found through B after "
                        f"{reload_result.get('seen_on_b_s', float('nan')):.2f} s, B embedded "
                        f"{reload_result.get('b_embedded')} texts for it"))] if len(urls) > 1 else []),
        ("throughput", f"{len(records) / run_s * 60:.1f} answers/min over {run_s:.0f} s"),
    ]
    print(f"\nteam server load test — CPU: {describe()}")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"| {key:<{width}} | {value} |")
    for line in errors[:10]:
        print(f"error: {line}")
    shutil.rmtree(work, ignore_errors=True)
    if len(urls) > 1 and (reload_result.get("b_embedded") != 0 or "seen_on_b_s" not in reload_result):
        raise SystemExit(1)
    if errors or lost or duplicated or not reload_result.get("ok"):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
