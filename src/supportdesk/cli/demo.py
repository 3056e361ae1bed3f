"""What ``supportdesk`` with no sub-command runs until the chat screen lands.

Brings the index up to date with the KB folder (incremental: seconds when nothing changed),
then answers searches typed at a prompt, showing scored, sourced chunks.
"""

from __future__ import annotations

import sys

from rich.markup import escape

from supportdesk.cli.context import AppContext, console, fail


def run_demo(appctx: AppContext) -> None:
    from supportdesk.cli.kb import _print_hits, build_with_progress

    console.print(f"[bold]supportdesk[/] — indexing {escape(str(appctx.settings.kb_dir))}")
    kb, report = build_with_progress(appctx)
    for skipped in report.skipped:
        console.print(f"[yellow]skipped[/] {escape(skipped.rel)}: {escape(skipped.reason)}")
    if not report.ok:
        fail(report.error or "could not build the index")
    console.print(f"{report.chunks_total} chunks from {report.files_total} files. Type a question (empty line quits).")
    if not sys.stdin.isatty():
        questions = [line.strip() for line in sys.stdin if line.strip()] or ["How do I return a router?"]
        for question in questions:
            _print_hits(question, kb.search(question), show_text=False)
        return
    while True:
        try:
            question = console.input("[bold cyan]search>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not question:
            break
        _print_hits(question, kb.search(question), show_text=False)
