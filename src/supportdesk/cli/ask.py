"""``supportdesk ask``: the full answer pipeline from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail

BADGES = {"voice": "[black on green] brand voice [/]", "grounded": "[black on cyan] grounded [/]",
          "handoff": "[black on yellow] handed off [/]"}


def build_pipeline(appctx: AppContext, backend: str | None = None, adapter: str | None = None):
    from supportdesk.answers import AnswerPipeline
    from supportdesk.models import BackendError, create_backend

    kb = appctx.built_knowledge_base()
    try:
        model = create_backend(appctx.settings, backend, adapter)
    except BackendError as exc:
        fail(str(exc))
    return AnswerPipeline(appctx.settings, kb, model)


def print_result(result) -> None:
    console.print(f"{BADGES[result.kind]} {escape(result.decision.get('reason', ''))}")
    if result.query != result.question:
        console.print(f"[dim]searched as: {escape(result.query)}[/]")
    if result.answer.strip() != result.streamed.strip():
        label = {"extractive": "quoted from the sources",
                 "unchecked-facts-removed": "unsourced numbers, addresses and links removed"}.get(
            result.fallback, "after citation check")
        console.print(f"[bold]final answer ({label}):[/] {escape(result.answer)}")
    if result.handoff_reason:
        console.print(f"[yellow]handed off:[/] {escape(result.handoff_reason)}")
    elif result.answerability:
        console.print(f"[dim]{escape(result.answerability['reason'])}[/]")
    if result.citations:
        table = Table(title="sources shown to the model", title_justify="left")
        for col in ("#", "cited", "score", "source", "heading"):
            table.add_column(col, overflow="fold")
        for c in result.citations:
            where = c.source + (f" p.{c.page}" if c.page else "")
            table.add_row(f"[{c.number}]", "yes" if c.cited else "", f"{c.score:.3f}", escape(where), escape(c.heading))
        console.print(table)
    if result.markers_total:
        console.print(f"[dim]citation markers: {result.markers_total}, invalid removed: {result.markers_invalid}; "
                      f"supported sentences: {result.supported_rate if result.supported_rate is not None else '-'}[/]")
    if result.injection_removed:
        console.print(f"[yellow]ignored {len(result.injection_removed)} instruction-like line(s) in the sources[/]")
    t = result.timings
    parts = [f"{k.removesuffix('_ms')} {t[k]:.0f} ms" for k in ("route_ms", "embed_ms", "search_ms", "prompt_ms", "ttft_ms", "generation_ms", "total_ms") if k in t]
    if "tokens_per_s" in t:
        parts.append(f"{t['tokens_per_s']:.0f} tok/s")
    err_console.print("[dim]" + " · ".join(parts) + "[/]")


def ask(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="The customer's message.")] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help="File with one question per line ('-': stdin).")] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="embedded | ollama (default: settings).")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="Adapter name, or 'none'.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Most tokens to generate.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per question.")] = False,
) -> None:
    """Answer like the bot: route, retrieve, generate, check citations; shows why and how long."""
    from supportdesk.models import BackendError, default_options

    appctx: AppContext = ctx.obj
    if (question is None) == (queries is None):
        fail("give either a QUESTION or --queries FILE")
    if queries is not None:
        try:
            # Invalid UTF-8 becomes U+FFFD in the question (the core cleans it), not a failed run.
            raw = sys.stdin.buffer.read() if str(queries) == "-" else queries.read_bytes()
            text = raw.decode("utf-8-sig", errors="surrogateescape")
        except OSError as exc:
            fail(f"cannot read questions file {queries}: {exc}")
        items = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        items = [question or ""]
    from supportdesk.sanitize import clean_question

    if not any(clean_question(item) for item in items):
        fail("the question is empty: type a message to ask")  # before any model is loaded
    pipeline = build_pipeline(appctx, backend, adapter)
    # One-time costs up front, as the TUI's start-up does, so the first question's timings
    # are the per-message costs (the route examples' embeddings took ~80 ms in its route_ms).
    load = getattr(pipeline.backend, "load", None)
    try:
        if callable(load):
            load()
    except BackendError as exc:
        fail(str(exc))
    pipeline.router.warm_up()
    options = default_options(appctx.settings, max_tokens=max_tokens)
    from supportdesk.answers import EmptyQuestion

    for item in items:
        try:
            answer = pipeline.ask(item, options=options)
        except EmptyQuestion as exc:
            if queries is None:
                fail(str(exc))
            continue
        try:
            if as_json:
                result = answer.run()
            else:
                console.print(f"[bold]> {escape(answer.result.question)}[/]")
                result = answer.run(lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
                print()
        except KeyboardInterrupt:
            answer.cancel()
            fail("cancelled", code=130)
        except BackendError as exc:
            fail(str(exc))
        if as_json:
            data = result.to_json()
            keep = ("question", "query", "route", "kind", "answer", "abstained", "handoff_reason", "fallback",
                    "decision", "answerability", "citations", "markers_total", "markers_invalid", "supported_rate",
                    "injection_removed", "unchecked_removed", "timings")
            print(json.dumps({k: data[k] for k in keep}), flush=True)
        else:
            print_result(result)
