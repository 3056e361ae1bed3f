"""Answer benchmark: TTFT against context size (to pick the chunk budget), then the full eval.

    .venv/bin/python bench/answers.py            # ~6 minutes on 2 cores
    .venv/bin/python bench/answers.py --curve    # only the TTFT-vs-context curve (~1 minute)

The curve: grounded prompts built from real sample-KB chunks, 0 to 4,000 characters of
context, first-token latency of the embedded model with nothing cached (median of 3). RAG
prompts are mostly context, and prompt evaluation on 2 cores is what the agent waits for.
Then the hand-off calibration tables (``supportdesk router calibrate-abstain``, nothing
written) and ``supportdesk eval``'s figures: route accuracy, E-Manual answer quality for
three systems, citation validity, support, abstention.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
DATASET = ROOT.parent / "shared" / "datasets" / "emanual"


def ttft_curve(budgets: list[int], runs: int = 3) -> list[tuple[int, int, float]]:
    from supportdesk.answers.prompts import GROUNDED_SYSTEM, grounded_user_message, select_sources
    from supportdesk.kb import KnowledgeBase
    from supportdesk.models import ChatMessage, GenerationOptions, create_backend
    from supportdesk.settings import Settings

    settings = Settings()
    kb = KnowledgeBase(settings)
    if kb.snapshot() is None:
        kb.reload()
    backend = create_backend(settings)
    hits = kb.search("warranty returns refund shipping Guardian price", k=20).hits
    rows = []
    for budget in budgets:
        sources = select_sources(hits, 20, budget) if budget else []
        question = "How long do I have to return a router?"
        user = grounded_user_message(question, sources) if sources else question
        messages = [ChatMessage("system", GROUNDED_SYSTEM), ChatMessage("user", user)]
        times = []
        for _ in range(runs):
            llm = backend._llm()[0]
            llm.reset()  # n_tokens = 0: nothing of the prompt is reused
            generation = backend.generate(messages, GenerationOptions(max_tokens=2, temperature=0.0))
            generation.run()
            times.append(generation.stats.ttft_ms or 0.0)
        rows.append((budget, generation.stats.prompt_tokens or 0, statistics.median(times)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--curve", action="store_true", help="only the TTFT-vs-context curve")
    parser.add_argument("-n", type=int, default=30, help="E-Manual questions per sample")
    args = parser.parse_args()
    from supportdesk.cpu import describe

    print(f"CPU: {describe()}", flush=True)

    from rich.console import Console
    from rich.table import Table

    console = Console(width=120)
    table = Table(title="TTFT vs grounded context (embedded SmolLM2-135M, cold prompt, median of 3)")
    for col in ("context chars", "prompt tokens", "TTFT ms"):
        table.add_column(col, justify="right")
    for chars, tokens, ms in ttft_curve([0, 500, 1000, 1500, 2000, 2400, 3000, 4000]):
        table.add_row(str(chars), str(tokens), f"{ms:.0f}")
    console.print(table)
    if args.curve:
        return
    if not DATASET.exists():
        sys.exit(f"dataset not found: {DATASET}")
    from typer.testing import CliRunner

    from supportdesk.cli import app

    for command in (["router", "calibrate-abstain"], ["eval", "-n", str(args.n)]):
        result = CliRunner().invoke(app, command, env={"COLUMNS": "120"})
        console.print(result.stdout)
        if result.exit_code:
            sys.exit(result.stderr)


if __name__ == "__main__":
    main()
