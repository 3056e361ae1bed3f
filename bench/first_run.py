"""First-run and contention benchmark: how soon the app answers, and whether it stays fast
while an adapter or an index is built beside it.

    .venv/bin/python bench/first_run.py            # ~4 minutes on 2 cores
    .venv/bin/python bench/first_run.py --full     # + the whole background sample-adapter build
    .venv/bin/python bench/first_run.py --as-avx2  # the same, as on a CPU with AVX2 only (x86-64)

Rows:
- start to ready: a fresh process on an empty data dir until the chat can answer (embedder
  and model loaded, the sample KB indexing behind, as the app does), and until the index is
  in; index chunks/s; query embedding p50.
- embedded decode tok/s (SmolLM2-135M, 64 tokens, p50 of 5): idle; while the background
  adapter build trains (idle class, every core), once left running and once held (stopped
  while the answer is written, as the app does); while `kb build --force` runs in another
  process; while an index build runs in this process. Each as a ratio of idle.
- with --full: the background build of the sample adapter from start to activation: minutes,
  peak RSS of the trainer process, held-out perplexity base -> adapter.

Every table is printed with the CPU model and the flags that decide the fast paths.
``--as-avx2`` re-runs the bench under ``bench/avx2only.c`` (an LD_PRELOAD shim that makes
CPUID report no AVX-512, AVX-VNNI or AMX, so oneDNN, ONNX Runtime and llama.cpp take their
AVX2 kernels) with ``SUPPORTDESK_CPU_FLAGS_HIDDEN`` set, so the product's own choices follow.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
SUPPORTDESK = [sys.executable, "-m", "supportdesk"]
SYSTEM = "You are Kestrel Care, the customer support team of Kestrel Networks. Be warm, brief and precise."
QUESTIONS = ["How do I return a router?", "My Wi-Fi is slow upstairs, what can I do?", "What does the amber light mean?",
             "Can I cancel Guardian?", "How long is the warranty?"]


def cpu_line() -> str:
    from supportdesk.cpu import describe

    return f"CPU: {describe()}"


def start_to_ready(kb: Path) -> dict[str, float]:
    """A new process, empty data dir: until the session says ready (it builds the index)."""
    data = Path(tempfile.mkdtemp(prefix="sd-first-"))
    code = (
        "import time, json; t0 = time.perf_counter()\n"
        "from supportdesk.settings import Settings\nfrom supportdesk.session import SupportSession\n"
        f"s = Settings(data_dir={str(data)!r}, kb_dir={str(kb)!r})\n"
        "session = SupportSession(s); session.start(index_in_background=True); ready = time.perf_counter() - t0\n"
        "while session.kb.snapshot() is None and session.index_error is None: time.sleep(0.1)\n"
        "indexed = time.perf_counter() - t0\n"
        "e = session.kb.embedder; qs = []\n"
        "for q in ['How do I return a router?'] * 3 + ['amber light meaning', 'cancel Guardian', 'warranty length'] * 4:\n"
        "    t = time.perf_counter(); e.embed_query(q); qs.append((time.perf_counter() - t) * 1000)\n"
        "qs.sort(); snap = session.kb.snapshot()\n"
        "print(json.dumps({'ready_s': ready, 'indexed_s': indexed, 'chunks': snap.chunk_count,"
        " 'query_ms_p50': qs[len(qs) // 2]}))\n"
    )
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=os.environ)
    result = __import__("json").loads(out.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - started
    report = subprocess.run([*SUPPORTDESK, "--data-dir", str(data), "--kb", str(kb), "kb", "build", "--force", "--json"],
                            capture_output=True, text=True, check=True)
    build = __import__("json").loads(report.stdout.strip().splitlines()[-1])
    result["index_chunks_per_s"] = build["chunks_added"] / max(build["seconds"], 1e-9)
    shutil.rmtree(data, ignore_errors=True)
    return result


def decode_rate(backend, runs: int = 5) -> float:
    from supportdesk.models import ChatMessage, GenerationOptions

    rates = []
    for i in range(runs):
        messages = [ChatMessage("system", SYSTEM), ChatMessage("user", QUESTIONS[i % len(QUESTIONS)] + f" ({i})")]
        generation = backend.generate(messages, GenerationOptions(max_tokens=64, temperature=0.0))
        generation.run()
        if generation.stats.tokens_per_s:
            rates.append(generation.stats.tokens_per_s)
    return statistics.median(rates)


def wait_for(predicate, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def under_background_build(backend, adapters: Path, hold: bool) -> float:
    """Decode while the background builder trains; ``hold`` stops it per answer, as the app does."""
    from supportdesk.training.background import held, pause_build, read_status, start_sample_build

    data = Path(tempfile.mkdtemp(prefix="sd-bg-"))
    os.environ["SUPPORTDESK_ADAPTERS_DIR"] = str(adapters)
    try:
        pid = start_sample_build(data, bootstrap_args=("--max-steps", "500"))
        if not wait_for(lambda: (s := read_status(data)) is not None and s.state == "training" and s.step >= 1, 300):
            raise RuntimeError(f"the builder never started training: {(data / 'adapter-build.log').read_text()[-800:]}")
        if not hold:
            return decode_rate(backend)
        rates = []
        for _ in range(5):
            with held(pid):
                rates.append(decode_rate(backend, runs=1))
            time.sleep(2)  # the builder runs between answers
        return statistics.median(rates)
    finally:
        pause_build(data, pid, wait_s=60)
        del os.environ["SUPPORTDESK_ADAPTERS_DIR"]
        shutil.rmtree(data, ignore_errors=True)


def decode_beside(backend, rebuild, warm_up_s: float) -> float:
    """Decode rate while ``rebuild()`` runs over and over in a thread (stopped afterwards)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            rebuild()

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    time.sleep(warm_up_s)
    try:
        return decode_rate(backend)
    finally:
        stop.set()
        worker.join(120)


def under_index_build_other_process(backend, kb: Path) -> float:
    data = Path(tempfile.mkdtemp(prefix="sd-idx-"))
    command = [*SUPPORTDESK, "--data-dir", str(data), "--kb", str(kb), "kb", "build", "--force"]
    try:  # 8 s: past the embedder import, into embedding
        return decode_beside(backend, lambda: subprocess.run(command, capture_output=True, check=False), 8)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def under_index_build_same_process(backend, kb: Path) -> float:
    from supportdesk.kb import KnowledgeBase
    from supportdesk.settings import Settings

    data = Path(tempfile.mkdtemp(prefix="sd-same-"))
    index = KnowledgeBase(Settings(data_dir=data, kb_dir=kb))
    index.embedder_info  # noqa: B018 - loaded before the clock starts
    try:
        return decode_beside(backend, lambda: index.reload(force=True), 1)
    finally:
        shutil.rmtree(data, ignore_errors=True)


def full_background_build() -> dict[str, float | str]:
    from supportdesk.training.background import read_status, start_sample_build

    data = Path(tempfile.mkdtemp(prefix="sd-full-"))
    adapters = Path(tempfile.mkdtemp(prefix="sd-full-adapters-"))
    os.environ["SUPPORTDESK_ADAPTERS_DIR"] = str(adapters)
    started = time.perf_counter()
    pid = start_sample_build(data)
    peak_kib = 0
    while True:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kib = max(peak_kib, int(line.split()[1]))
        except OSError:
            pass
        status = read_status(data)
        if status is not None and status.state in ("done", "failed", "rejected", "paused"):
            break
        time.sleep(1)
    minutes = (time.perf_counter() - started) / 60
    del os.environ["SUPPORTDESK_ADAPTERS_DIR"]
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(adapters, ignore_errors=True)
    return {"minutes": minutes, "peak_rss_gib": peak_kib / 1024**2, "state": status.state, "result": status.message}


def as_avx2() -> None:
    """Re-run this bench under the AVX2-only CPUID shim (the process replaces itself)."""
    if os.environ.get("SUPPORTDESK_AS_AVX2") == "1":
        return
    shim = Path(tempfile.gettempdir()) / "supportdesk-avx2only.so"
    subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(shim), str(ROOT / "bench" / "avx2only.c")], check=True)
    env = dict(os.environ, LD_PRELOAD=str(shim), SUPPORTDESK_AS_AVX2="1",
               SUPPORTDESK_CPU_FLAGS_HIDDEN="avx512* amx* avx_vnni")
    argv = [a for a in sys.argv if a != "--as-avx2"]
    os.execve(sys.executable, [sys.executable, *argv], env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also run the whole background adapter build")
    parser.add_argument("--as-avx2", action="store_true", help="run as on a CPU with AVX2 only (x86-64 Linux, needs gcc)")
    args = parser.parse_args()
    if args.as_avx2:
        as_avx2()
    from supportdesk.models.embedded import EmbeddedBackend

    kb = ROOT / "kb"
    print(cpu_line())
    first = start_to_ready(kb)
    print("\n| first run (fresh process, empty data dir) | value |\n|---|---|")
    print(f"| start to chat ready (embedder and model loaded; index building behind) | {first['ready_s']:.1f} s |")
    print(f"| start to sample index in ({first['chunks']} chunks) | {first['indexed_s']:.1f} s |")
    print(f"| index build, chunks/s (kb build --force) | {first['index_chunks_per_s']:.0f} |")
    print(f"| query embedding p50 | {first['query_ms_p50']:.1f} ms |")

    backend = EmbeddedBackend(threads=2)
    backend.load()
    decode_rate(backend, runs=2)  # warm
    adapters = Path(tempfile.mkdtemp(prefix="sd-adapters-"))
    rows = [("idle", decode_rate(backend))]
    rows.append(("background adapter build running beside it", under_background_build(backend, adapters, hold=False)))
    rows.append(("background adapter build, held while answering (the app)", under_background_build(backend, adapters, hold=True)))
    rows.append(("`kb build --force` in another process", under_index_build_other_process(backend, kb)))
    rows.append(("index build in the same process", under_index_build_same_process(backend, kb)))
    shutil.rmtree(adapters, ignore_errors=True)
    idle = rows[0][1]
    print("\n| embedded decode (SmolLM2-135M, 64 tokens, p50 of 5) | tok/s | x idle |\n|---|---|---|")
    for name, rate in rows:
        print(f"| {name} | {rate:.0f} | {rate / idle:.2f} |")
    if args.full:
        full = full_background_build()
        print("\n| background sample-adapter build (idle class, every core) | value |\n|---|---|")
        print(f"| start to {full['state']} | {full['minutes']:.1f} min |")
        print(f"| peak RSS of the builder | {full['peak_rss_gib']:.2f} GiB |")
        print(f"| held-out evaluation | {full['result']} |")


if __name__ == "__main__":
    main()
