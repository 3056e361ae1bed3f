"""Generation benchmark: the embedded backend (llama.cpp) vs. llama.cpp's server and transformers.

    .venv/bin/python bench/generation.py          # ~2 minutes on 2 cores

Rows: embedded SmolLM2-135M without and with an adapter, cold (a fresh process: model load +
a first prompt with nothing cached) and warm (same process, new question after the same
system prompt), 5 runs each; then the reference row: transformers on the GGUF base
dequantized to fp32, greedy, same prompt; and llama.cpp's OpenAI-compatible server (backend
'openai', same GGUF and LoRA): one stream, and 4 concurrent streams (aggregate). Each configuration runs in its own process so
peak RSS is its own. Figures: TTFT p50, decode tok/s p50, load time, peak RSS.

The adapter is the active one if any (``supportdesk adapter activate``), else the sample
adapter in adapters/, else a synthetic rank-16 q/k/v/o LoRA of the same size as a real one.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SYSTEM = "You are Kestrel Care, the customer support team of Kestrel Networks. Be warm, brief and precise."
QUESTIONS = [
    "How do I return a router?",
    "My Wi-Fi is slow upstairs, what can I do?",
    "What does the amber light mean?",
    "Can I cancel Guardian?",
    "Thanks for your help!",
    "How long is the warranty?",
]
MAX_TOKENS = 64


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_adapter(folder: Path) -> Path:
    import numpy as np

    from supportdesk.training.gguf_lora import write_gguf_lora

    rng = np.random.default_rng(0)
    pairs = {}
    for layer in range(30):
        for module, out in (("q_proj", 576), ("k_proj", 192), ("v_proj", 192), ("o_proj", 576)):
            pairs[f"model.layers.{layer}.self_attn.{module}"] = (
                (rng.standard_normal((16, 576)) * 0.01).astype(np.float32),
                (rng.standard_normal((out, 16)) * 0.01).astype(np.float32),
            )
    folder.mkdir(parents=True, exist_ok=True)
    write_gguf_lora(folder / "adapter.gguf", pairs, alpha=32, n_layers=30, n_head=9, n_head_kv=3)
    return folder


def worker_embedded(adapter_dir: str | None, runs: int) -> dict:
    import gguf  # noqa: F401 - library imports are process start-up, not model cold start
    import llama_cpp  # noqa: F401

    from supportdesk.models import ChatMessage, GenerationOptions
    from supportdesk.models.adapters import AdapterInfo
    from supportdesk.models.embedded import EmbeddedBackend

    adapter = AdapterInfo(Path(adapter_dir).name, Path(adapter_dir)) if adapter_dir else None
    backend = EmbeddedBackend(adapter=adapter, context_tokens=4096)
    options = GenerationOptions(max_tokens=MAX_TOKENS, temperature=0.0)
    first = backend.generate([ChatMessage("system", SYSTEM), ChatMessage("user", QUESTIONS[0])], options)
    first.run()
    # Cold TTFT: from the request to the first token, model load (and adapter check) included.
    cold = {"ttft_ms": first.stats.ttft_ms, "load_ms": first.stats.load_ms, "tok_s": first.stats.tokens_per_s}
    warm = []
    for i in range(runs):
        gen = backend.generate([ChatMessage("system", SYSTEM), ChatMessage("user", QUESTIONS[1 + i % 5])], options)
        gen.run()
        warm.append({"ttft_ms": gen.stats.ttft_ms, "tok_s": gen.stats.tokens_per_s, "tokens": gen.stats.tokens,
                     "cached": gen.stats.prompt_cached_tokens})
    return {"cold": cold, "warm": warm, "rss_mib": rss_mib()}


def worker_transformers(runs: int) -> dict:
    import threading

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

    from supportdesk.models.embedded import default_gguf_path

    torch.set_num_threads(2)
    gguf = default_gguf_path()
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32).eval()
    load_ms = (time.perf_counter() - start) * 1000
    out = []
    for i in range(runs + 1):
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[i % 6]}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
        kwargs = dict(**ids, max_new_tokens=MAX_TOKENS, do_sample=False, streamer=streamer)
        begin = time.perf_counter()
        thread = threading.Thread(target=model.generate, kwargs=kwargs)
        thread.start()
        first = None
        for piece in streamer:
            if piece and first is None:
                first = time.perf_counter()
        thread.join()
        end = time.perf_counter()
        # generated token count: re-tokenise is inexact; count via a second pass is costly, use max_new_tokens bound
        out.append({"ttft_ms": ((first or end) - begin) * 1000, "tok_s": (MAX_TOKENS - 1) / (end - (first or end))
                    if first and end > first else None})
    return {"load_ms": load_ms, "cold": out[0], "warm": out[1:], "rss_mib": rss_mib()}


def start_server(kind: str, adapter_gguf: Path, tmp: Path, llama_server: str | None) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's server (``kind='python'``) or llama.cpp's C++ ``llama-server`` with 4
    parallel slots (``kind='cpp'``), serving the base + the adapter on a free loopback port."""
    import socket

    from supportdesk.models.embedded import default_gguf_path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp / f"server-{kind}.log").open("w")
    if kind == "cpp":
        command = [llama_server or "llama-server", "-m", str(default_gguf_path()), "--lora", str(adapter_gguf),
                   "--alias", "adapter", "--host", "127.0.0.1", "--port", str(port), "-t", "2", "-tb", "2",
                   "--parallel", "4", "-c", str(4 * 2048), "--no-webui", "--poll", "0"]
    else:
        from supportdesk.models.openai_backend import llama_cpp_python_config

        config = llama_cpp_python_config(default_gguf_path(), {"base": None, "adapter": adapter_gguf}, port=port)
        (tmp / "server.json").write_text(json.dumps(config))
        command = [sys.executable, "-m", "supportdesk.models.llama_amx", "--config_file", str(tmp / "server.json")]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), f"http://127.0.0.1:{port}/v1"


def server_rows(kind: str, label: str, adapter_dir: Path, runs: int, tmp: Path, llama_server: str | None) -> list[tuple]:
    """Through the 'openai' backend: one stream, then 4 concurrent streams (aggregate tokens/s
    over the wall time)."""
    from concurrent.futures import ThreadPoolExecutor

    from supportdesk.models import ChatMessage, GenerationOptions
    from supportdesk.models.openai_backend import OpenAIBackend

    server, url = start_server(kind, Path(adapter_dir) / "adapter.gguf", tmp, llama_server)
    try:
        started = time.perf_counter()
        while not OpenAIBackend(url, "adapter").ping():
            if server.poll() is not None or time.perf_counter() - started > 60:
                sys.exit(f"{label} did not start: {(tmp / f'server-{kind}.log').read_text()[-1500:]}")
            time.sleep(0.2)
        ready_ms = (time.perf_counter() - started) * 1000
        options = GenerationOptions(max_tokens=MAX_TOKENS, temperature=0.0)
        backend = OpenAIBackend(url, "base", adapter="adapter", read_timeout=120)

        def one(question: str):
            gen = backend.generate([ChatMessage("system", SYSTEM), ChatMessage("user", question)], options)
            gen.run()
            return gen.stats

        one(QUESTIONS[0])  # llama-cpp-python's server loads the adapter model on its first request
        single = [one(QUESTIONS[1 + i % 5]) for i in range(runs)]
        rows = [(f"{label}, 1 stream", statistics.median(s.ttft_ms for s in single),
                 statistics.median(s.tokens_per_s for s in single), ready_ms, None)]
        begin = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            stats = list(pool.map(one, [QUESTIONS[1 + i % 5] for i in range(4 * max(1, runs // 2))]))
        wall = time.perf_counter() - begin
        rows.append((f"{label}, 4 concurrent streams (aggregate tok/s)",
                     statistics.median(s.ttft_ms for s in stats), sum(s.tokens for s in stats) / wall, None, None))
        return rows
    finally:
        server.terminate()
        server.wait(10)


def run_worker(*args: str) -> dict:
    result = subprocess.run([sys.executable, __file__, "--worker", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"worker {args} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument("--skip-server", action="store_true", help="no llama.cpp server rows (backend 'openai')")
    parser.add_argument("--llama-server", default=os.environ.get("LLAMA_SERVER"),
                        help="path of llama.cpp's C++ llama-server (scripts/build_llama_server.sh) for its rows")
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "embedded":
            print(json.dumps(worker_embedded(rest[0] if rest and rest[0] != "-" else None, args.runs)))
        else:
            print(json.dumps(worker_transformers(args.runs)))
        return

    from rich.console import Console
    from rich.table import Table

    from supportdesk.cpu import describe

    print(f"CPU: {describe()}", flush=True)

    from supportdesk.models import resolve_adapter
    from supportdesk.settings import Settings

    settings = Settings()
    try:
        adapter = resolve_adapter(settings)
    except Exception:  # noqa: BLE001 - fall back to the synthetic adapter below
        adapter = None
    tmp = Path(tempfile.mkdtemp(prefix="supportdesk-genbench-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    if adapter is None:
        adapter_dir, adapter_label = synthetic_adapter(tmp / "synthetic"), "synthetic rank-16 q/k/v/o"
    else:
        adapter_dir, adapter_label = adapter.path, adapter.name

    rows = []
    for label, adapter_arg in (("embedded, base", "-"), (f"embedded + adapter ({adapter_label})", str(adapter_dir))):
        results = [run_worker("embedded", adapter_arg, "--runs", str(args.runs)) for _ in range(args.cold_runs)]
        cold_ttft = statistics.median(r["cold"]["ttft_ms"] for r in results)
        load = statistics.median(r["cold"]["load_ms"] for r in results)
        cold_tok = statistics.median(r["cold"]["tok_s"] for r in results)
        warm = [w for r in results for w in r["warm"]]
        rows.append((label + ", cold", cold_ttft, cold_tok, load, max(r["rss_mib"] for r in results)))
        rows.append((label + ", warm", statistics.median(w["ttft_ms"] for w in warm),
                     statistics.median(w["tok_s"] for w in warm), 0.0, max(r["rss_mib"] for r in results)))
    if not args.skip_server:
        rows.extend(server_rows("python", f"llama-cpp-python server + adapter ({adapter_label})", Path(adapter_dir),
                                args.runs, tmp, None))
        if args.llama_server:
            rows.extend(server_rows("cpp", "llama.cpp llama-server --parallel 4 + adapter", Path(adapter_dir),
                                    args.runs, tmp, args.llama_server))
    if not args.skip_transformers:
        ref = run_worker("transformers", "--runs", str(args.runs))
        rows.append(("transformers fp32 (dequantized GGUF), cold", ref["cold"]["ttft_ms"], ref["cold"]["tok_s"],
                     ref["load_ms"], ref["rss_mib"]))
        rows.append(("transformers fp32 (dequantized GGUF), warm", statistics.median(w["ttft_ms"] for w in ref["warm"]),
                     statistics.median(w["tok_s"] for w in ref["warm"] if w["tok_s"]), 0.0, ref["rss_mib"]))

    table = Table(title=f"Generation: SmolLM2-135M-Instruct, {MAX_TOKENS} new tokens, greedy, 2 threads")
    for col in ("configuration", "TTFT p50 (ms)", "decode tok/s p50", "load (ms)", "peak RSS (MiB)"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for label, ttft, tok, load, rss in rows:
        table.add_row(label, f"{ttft:.0f}", f"{tok:.0f}" if tok else "-", f"{load:.0f}" if load else "-",
                      f"{rss:.0f}" if rss else "(server)")
    Console(width=130).print(table)
    if not args.skip_server:
        embedded_warm = rows[3][2]
        for prefix in ("llama-cpp-python server", "llama.cpp llama-server"):
            ones = [r for r in rows if r[0].startswith(prefix) and r[0].endswith("1 stream")]
            fours = [r for r in rows if r[0].startswith(prefix) and "4 concurrent" in r[0]]
            if ones and fours:
                Console().print(f"{prefix} vs embedded (+ adapter, warm) decode: {ones[0][2] / embedded_warm:.2f}x; "
                                f"4 concurrent streams vs 1: {fours[0][2] / ones[0][2]:.2f}x aggregate")
    if not args.skip_transformers:
        warm_adapter = rows[3][2]
        ref_warm = rows[-1][2]
        Console().print(f"embedded + adapter (warm) vs transformers (warm) decode speed: {warm_adapter / ref_warm:.1f}x")


if __name__ == "__main__":
    main()
