"""``supportdesk ask``: the full answer pipeline from the command line."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail

if TYPE_CHECKING:
    from supportdesk.answers.pipeline import Turn

BADGES = {"voice": "[black on green] brand voice [/]", "grounded": "[black on cyan] grounded [/]",
          "handoff": "[black on yellow] handed off [/]", "clarify": "[black on magenta] clarify [/]",
          "decline": "[black on bright_red] declined [/]", "approved": "[black on bright_green] approved [/]"}


def build_pipeline(appctx: AppContext, backend: str | None = None, adapter: str | None = None):
    from supportdesk.answers import AnswerPipeline
    from supportdesk.models import BackendError, create_backend

    kb = appctx.built_knowledge_base()
    try:
        model = create_backend(appctx.settings, backend, adapter)
    except BackendError as exc:
        fail(str(exc))
    pipeline = AnswerPipeline(appctx.settings, kb, model)
    attach_approved(appctx, pipeline)
    return pipeline


def attach_approved(appctx: AppContext, pipeline) -> None:
    """Approved answers from this history, matched before the model (read when each question comes)."""
    from supportdesk.answers.approved import approved_service
    from supportdesk.history import HistoryError, open_history

    try:
        store = open_history(appctx.settings)
    except (HistoryError, OSError) as exc:
        err_console.print(f"[yellow]warning:[/] approved answers not used: {escape(str(exc))}")
        return
    pipeline.approved = approved_service(lambda: store.approved, pipeline.kb, appctx.settings)


def print_result(result) -> None:
    console.print(f"{BADGES[result.kind]} {escape(result.decision.get('reason', ''))}")
    if result.approved_citation:
        console.print(f"[green]{escape(result.approved_citation)}[/]")
    for s in result.suggestions:
        console.print(f"[dim]suggestion: approved answer #{s['answer_id']} ({s['score']:.2f}): "
                      f"{escape(s['text'][:100])}[/]")
    if result.query != result.question:
        console.print(f"[dim]searched as{' (follow-up)' if result.follow_up else ''}: {escape(result.query)}[/]")
    if result.answer.strip() != result.streamed.strip():
        label = {"extractive": "quoted from the sources",
                 "unchecked-facts-removed": "unsourced numbers, addresses and links removed",
                 "approved-reply": "an approved reply: the model's draft failed the voice check"}.get(
            result.fallback, "after citation check")
        console.print(f"[bold]final answer ({label}):[/] {escape(result.answer)}")
    if result.composed == "extracted":
        console.print("[dim]facts quoted from the sources (no model call)[/]")
    for removed in result.claims_removed:
        console.print(f"[yellow]dropped[/] {escape(removed['sentence'])} [dim]({escape(removed['reason'])})[/]")
    if result.voice_check and not result.voice_check.get("passed", True):
        console.print(f"[yellow]voice check:[/] {escape('; '.join(result.voice_check['problems']))}")
    if result.decline_reason:
        console.print(f"[bright_red]declined:[/] {escape(result.decline_reason)}")
    if result.clarify_reason:
        console.print(f"[magenta]asked to clarify:[/] {escape(result.clarify_reason)}")
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


_ROLES = {"user": "user", "customer": "user", "agent": "assistant", "assistant": "assistant", "bot": "assistant"}


def read_conversations(text: str, name: str) -> tuple[list[str], list[list[Turn]]]:
    """``--conversations`` lines → (questions, histories); a bad line names its line and field."""
    from supportdesk.answers.pipeline import Turn
    from supportdesk.jsonl import parse_lines

    questions: list[str] = []
    histories: list[list[Turn]] = []
    for number, row in parse_lines(text, name):
        if not isinstance(row, dict) or not isinstance(row.get("question"), str):
            raise ValueError(f"{name}, line {number}: field 'question' (a string) is missing")  # noqa: TRY004 - a message for the user, caught as ValueError
        history = row.get("history", [])
        if not isinstance(history, list):
            raise ValueError(f"{name}, line {number}: field 'history' must be a list of {{role, text}}")  # noqa: TRY004
        turns = []
        for index, turn in enumerate(history):
            role = _ROLES.get(str(turn.get("role", "")).lower()) if isinstance(turn, dict) else None
            if role is None or not isinstance(turn.get("text"), str):
                raise ValueError(f"{name}, line {number}: history[{index}] needs 'role' (user or agent) and 'text'")
            turns.append(Turn(role, turn["text"]))  # type: ignore[arg-type]
        questions.append(row["question"])
        histories.append(turns)
    return questions, histories


def ask(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="The customer's message.")] = None,
    queries: Annotated[Path | None, typer.Option("--queries", help="File with one question per line ('-': stdin).")] = None,
    conversations: Annotated[Path | None, typer.Option(
        "--conversations",
        help="JSONL, one turn to answer per line: {\"history\": [{\"role\": \"user\"|\"agent\", \"text\"}], "
        "\"question\"} ('-': stdin). Each line is answered with its own history.",
    )] = None,
    backend: Annotated[str | None, typer.Option("--backend", help="embedded | ollama | openai (default: settings).")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="Adapter name, or 'none'.")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Most tokens to generate.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per question.")] = False,
) -> None:
    """Answer like the bot: route, retrieve, generate, check citations; shows why and how long."""
    from supportdesk.models import BackendError, default_options

    appctx: AppContext = ctx.obj
    if sum(x is not None for x in (question, queries, conversations)) != 1:
        fail("give one of: a QUESTION, --queries FILE or --conversations FILE")
    histories: list[list[Turn]] = []
    if queries is not None or conversations is not None:
        path = queries or conversations
        assert path is not None
        try:
            # Invalid UTF-8 becomes U+FFFD in the question (the core cleans it), not a failed run.
            raw = sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()
            text = raw.decode("utf-8-sig", errors="surrogateescape")
        except OSError as exc:
            fail(f"cannot read {'conversations' if conversations else 'questions'} file {path}: {exc}")
        if conversations is not None:
            try:
                items, histories = read_conversations(text, str(path))
            except ValueError as exc:
                fail(str(exc))
        else:
            items = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        items = [question or ""]
    from supportdesk.sanitize import clean_question

    if not any(clean_question(item) for item in items):
        fail("the question is empty: type a message to ask")  # before any model is loaded
    if appctx.server:
        if backend or adapter or max_tokens:
            fail("--backend, --adapter and --max-tokens are not available through --server: "
                 "the server answers with its own model and settings")
        remote = appctx.remote

        def start(item: str, history: list[Turn] | None):
            remote.conversation_id = None  # each question on its own, as without --server
            if conversations is not None:  # answered after its own history; the server stores nothing
                return remote.ask(item, history or [])
            return remote.ask(item)
    else:
        pipeline = build_pipeline(appctx, backend, adapter)
        # One-time costs up front, as the TUI's start-up does, so the first question's timings
        # are the per-message costs (the route examples' embeddings took ~80 ms in its route_ms).
        load = getattr(pipeline.backend, "load", None)
        try:
            if callable(load):
                load()
        except BackendError as exc:
            fail(str(exc))
        pipeline.warm_up()
        options = default_options(appctx.settings, max_tokens=max_tokens)

        def start(item: str, history: list[Turn] | None):
            return pipeline.ask(item, history, options=options)
    from supportdesk.answers import EmptyQuestion

    for position, item in enumerate(items):
        try:
            answer = start(item, histories[position] if histories else None)
        except EmptyQuestion as exc:
            if question is not None:
                fail(str(exc))
            if as_json and conversations is not None:  # one output line per input line, always
                print(json.dumps({"question": item, "error": str(exc)}), flush=True)
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
            keep = ("question", "query", "route", "kind", "answer", "abstained", "handoff_reason", "clarify_reason",
                    "decline_reason", "policy", "voice_check", "fallback", "composed", "claims_removed", "decision",
                    "answerability", "citations", "markers_total", "markers_invalid",
                    "markers_added", "supported_rate", "injection_removed", "unchecked_removed", "timings",
                    "approved_id", "approved_citation", "suggestions")
            print(json.dumps({k: data[k] for k in keep}), flush=True)
        else:
            print_result(result)
