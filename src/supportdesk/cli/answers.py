"""``supportdesk answers``: approved answers (issue 28): import, list, show, remove, export, review, propose.

Locally they live in the history (its SQLite file or ``history.url``); with ``--server`` they go
through the team server, where agents propose and trainers import, review and remove.
"""

from __future__ import annotations

import csv
import getpass
import io
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, fail, history_store
from supportdesk.cli.help import App
from supportdesk.sanitize import safe_text

app = App(help="Approved answers: served before the model when a question matches one of theirs.",
          no_args_is_help=True)


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "local"


@contextmanager
def _approved(ctx: typer.Context) -> Iterator[Any]:
    """The approved answers: the team server's with --server, else this history's (one clear line on errors)."""
    from supportdesk.answers.approved import SessionApproved
    from supportdesk.history.approved import ApprovedError

    appctx: AppContext = ctx.obj
    with history_store(ctx) as store:
        try:
            yield appctx.remote.approved if appctx.server else SessionApproved(store, by=_who())
        except ApprovedError as exc:
            fail(str(exc))


def _date(at: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(at)) if at else "-"


@app.command("import")
def import_file(ctx: typer.Context, file: Annotated[Path, typer.Argument(help="CSV or JSONL: question, answer, "
                                                                             "optional id, optional sources.")]) -> None:
    """Import approved answers (trainer). Every row is checked first: nothing is imported if one is bad.
    Rows sharing an id are wordings of one answer; importing the same ids again updates those answers."""
    from supportdesk.answers.importing import read_rows

    try:
        rows = read_rows(file)
    except ValueError as exc:
        fail(str(exc))
    with _approved(ctx) as approved:
        done = approved.import_rows(rows)
    created = sum(c for _, c in done)
    console.print(f"imported {len(done)} approved answer(s) from {escape(str(file))}: {created} new, "
                  f"{len(done) - created} updated")


@app.command("list")
def list_answers(ctx: typer.Context,
                 as_json: Annotated[bool, typer.Option("--json", help="One JSON line per answer.")] = False) -> None:
    """Every approved answer with its questions, hits and who approved it."""
    with _approved(ctx) as approved:
        found = approved.all()
    if as_json:
        for a in found:
            print(json.dumps(a.to_json(), ensure_ascii=False))
        return
    table = Table(title=f"approved answers ({len(found)})")
    for col in ("id", "questions", "hits", "approved", "question", "answer"):
        table.add_column(col, overflow="fold")
    for a in found:
        first = a.questions[0].question if a.questions else ""
        table.add_row(str(a.id), str(len(a.questions)), str(a.hits), f"{escape(a.approved_by or '-')} {_date(a.approved_at)}",
                      escape(safe_text(first)), escape(safe_text(a.answer[:120])))
    console.print(table)


@app.command("show")
def show(ctx: typer.Context, answer_id: int,
         as_json: Annotated[bool, typer.Option("--json", help="As one JSON object.")] = False) -> None:
    """One approved answer: its text, sources, questions (and where each came from), hits."""
    with _approved(ctx) as approved:
        found = approved.get(answer_id)
    if found is None:
        fail(f"no approved answer #{answer_id}")
    if as_json:
        print(json.dumps(found.to_json(), ensure_ascii=False))
        return
    console.print(f"[bold]{escape(found.citation())}[/]  hits: {found.hits} (last {_date(found.last_hit)})")
    console.print(escape(safe_text(found.answer)))
    for s in found.sources:
        console.print(f"  [dim]source: {escape(str(s.get('source', '?')))} {escape(str(s.get('heading') or ''))}[/]")
    for q in found.questions:
        console.print(f"  [cyan]?[/] {escape(safe_text(q.question))} [dim]({q.origin}, {escape(q.created_by or '-')})[/]")


@app.command("remove")
def remove(ctx: typer.Context, answer_id: int) -> None:
    """Remove an approved answer and its questions (trainer)."""
    with _approved(ctx) as approved:
        removed = approved.remove(answer_id)
    if not removed:
        fail(f"no approved answer #{answer_id}")
    console.print(f"removed approved answer #{answer_id}")


@app.command("export")
def export(ctx: typer.Context,
           as_json: Annotated[bool, typer.Option("--json", help="JSONL, one answer per line with every field.")] = False,
           output: Annotated[Path | None, typer.Option("-o", "--output", help="File (default: stdout).")] = None) -> None:
    """The approved answers as a file 'answers import' reads back: CSV (one row per question, rows of one
    answer share its id: the imported id, or #N for approved answer N) or, with --json, JSONL."""
    with _approved(ctx) as approved:
        found = approved.all()
    buffer = io.StringIO()
    if as_json:
        for a in found:
            buffer.write(json.dumps({**a.to_json(), "id": a.key or f"#{a.id}", "answer_id": a.id,
                                     "question": a.questions[0].question if a.questions else ""},
                                    ensure_ascii=False) + "\n")
    else:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["question", "answer", "id", "sources"])
        for a in found:
            sources = json.dumps(a.sources, ensure_ascii=False) if a.sources else ""
            for q in a.questions:
                writer.writerow([q.question, a.answer, a.key or f"#{a.id}", sources])
    if output is None:
        sys.stdout.write(buffer.getvalue())
    else:
        output.write_text(buffer.getvalue(), encoding="utf-8")
        console.print(f"wrote {len(found)} approved answer(s) to {escape(str(output))}")


@app.command("propose")
def propose(ctx: typer.Context,
            text: Annotated[str, typer.Option("--text", help="The answer you propose.")],
            message: Annotated[int | None, typer.Option("--message", help="The stored answer it rewrites.")] = None,
            question: Annotated[str | None, typer.Option("--question", help="Without --message: the question.")] = None,
            ) -> None:
    """Propose an answer for a trainer to review (an agent's rewrite of a stored answer, or a new one)."""
    if (message is None) == (question is None):
        fail("give --message ID (a stored answer) or --question TEXT")
    with _approved(ctx) as approved:
        proposal = approved.propose(message, text) if message is not None else approved.propose_text(question, text)
    console.print(f"proposal #{proposal} waits for a trainer ('supportdesk answers review')")


def _show_proposal(p: Any) -> None:
    console.print(f"[bold]proposal #{p.id}[/] by {escape(p.proposed_by or '-')} on {_date(p.proposed_at)}")
    console.print(f"  [cyan]question:[/] {escape(safe_text(p.question))}")
    if p.draft:
        console.print(f"  [dim]draft:    {escape(safe_text(p.draft))}[/]")
    console.print(f"  [green]proposed:[/] {escape(safe_text(p.proposed))}")


@app.command("review")
def review(ctx: typer.Context,
           accept: Annotated[list[int] | None, typer.Option("--accept", help="Accept this proposal (no prompt).")] = None,
           reject: Annotated[list[int] | None, typer.Option("--reject", help="Reject this proposal (no prompt).")] = None,
           text: Annotated[str | None, typer.Option("--text", help="With one --accept: the answer as you edited it.")] = None,
           list_only: Annotated[bool, typer.Option("--list", help="List the pending proposals and stop.")] = False,
           as_json: Annotated[bool, typer.Option("--json", help="With --list: one JSON line per proposal.")] = False,
           ) -> None:
    """Review agents' proposals (trainer): accept (it becomes an approved answer with the draft's sources),
    edit then accept, or reject. Without flags, one by one at the prompt."""
    accept, reject = accept or [], reject or []
    if text is not None and len(accept) != 1:
        fail("--text goes with exactly one --accept")
    with _approved(ctx) as approved:
        if accept or reject:
            for proposal_id in accept:
                answer_id = approved.accept(proposal_id, text)
                console.print(f"proposal #{proposal_id} accepted: approved answer #{answer_id}")
            for proposal_id in reject:
                approved.reject(proposal_id)
                console.print(f"proposal #{proposal_id} rejected")
            return
        pending = approved.proposals("pending")
        if list_only or as_json:
            for p in pending:
                print(json.dumps(p.to_json(), ensure_ascii=False)) if as_json else _show_proposal(p)
            if not pending and not as_json:
                console.print("no proposals wait for review")
            return
        if not pending:
            console.print("no proposals wait for review")
            return
        for p in pending:
            _show_proposal(p)
            choice = typer.prompt("[a]ccept, [e]dit, [r]eject, [s]kip, [q]uit", default="s").strip().lower()[:1]
            if choice == "q":
                break
            if choice == "a":
                console.print(f"  accepted: approved answer #{approved.accept(p.id)}")
            elif choice == "e":
                edited = typer.edit(p.proposed) if sys.stdin.isatty() else None
                edited = (edited or typer.prompt("answer", default=p.proposed)).strip()
                console.print(f"  accepted as edited: approved answer #{approved.accept(p.id, edited)}")
            elif choice == "r":
                approved.reject(p.id)
                console.print("  rejected")


def eval_approved(
    ctx: typer.Context,
    half: Annotated[str, typer.Option("--half", help="Report on this half of faq_retrieval: a or b.")] = "b",
    calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="Fit the confidence and the thresholds on the other half first and use them "
                            "(default: the settings' approved.threshold / suggest_floor and the shipped coefficients).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
) -> None:
    """Approved-answer matching on ../shared/datasets/faq_retrieval (68 FAQ entries imported, ~1,037 real
    paraphrases asked; mtrag_dev, E-Manual and social_dev must not be served). No model runs."""
    from supportdesk.answers.approved import COEF
    from supportdesk.evaluation import approved as evaluation

    if half not in ("a", "b"):
        fail("--half is a or b")
    appctx: AppContext = ctx.obj
    settings = appctx.settings
    try:
        data = evaluation.load()
    except (OSError, ValueError) as exc:
        fail(str(exc))
    from supportdesk.kb.embeddings import create_embedder

    embedder = create_embedder(settings.embedding, settings.model.ollama_host)
    matcher = evaluation._matcher(data, embedder.embed_documents)
    cfg = settings.approved
    coef, threshold, floor, min_score = COEF, cfg.threshold, cfg.suggest_floor, cfg.min_score
    calibration = None
    if calibrate:
        calibration = evaluation.calibrate("a" if half == "b" else "b", data, matcher=matcher)
        coef, threshold, floor = calibration.coef, calibration.threshold, calibration.suggest_floor
        min_score = calibration.min_score
    report = evaluation.report(half, threshold, floor, coef, data, embedder.embed_documents, matcher,
                               min_score=min_score)
    if as_json:
        out = report.to_json()
        if calibration is not None:
            from dataclasses import asdict

            out["calibration"] = asdict(calibration)
        print(json.dumps(out))
        return
    if calibration is not None:
        console.print(f"calibrated on half {calibration.half}: coef {list(calibration.coef)}, threshold "
                      f"{calibration.threshold}, suggest floor {calibration.suggest_floor}, min score {calibration.min_score} "
                      f"(there: served right "
                      f"{calibration.served_right}, wrong {calibration.wrong_share}, off-domain {calibration.off_domain_served}; "
                      + "; ".join(f"{name}: served right {f['served_right']}, wrong {f['wrong_share']}"
                                  for name, f in calibration.states.items()) + ")")
    table = Table(title=f"approved answers on faq_retrieval, half {half} ({report.questions} questions; "
                        f"{report.learned_from_other_half} wordings learned from the other half)")
    for col in ("", "with learned wordings", "a quarter learned (each in turn)", "imported questions only"):
        table.add_column(col)
    states = (report.to_json(), report.quarter, report.static)
    table.add_row("served", str(report.served), f"{report.quarter['served']} in 4 runs", str(report.static["served"]))
    table.add_row("wrong, of those served", *(f"{s['wrong_share']:.3f}" for s in states))
    table.add_row("served with the right entry", *(f"{s['served_right_share']:.3f}" for s in states))
    table.add_row("right entry among three", *(f"{s['right_in_three']:.3f}" for s in states))
    console.print(table)
    console.print("a quarter learned, each quarter: " + ", ".join(
        f"{q['served_wrong']}/{q['served']} wrong" for q in report.quarter.get("each", [])))
    for name, figures in report.off_domain.items():
        console.print(f"{name}: {figures['questions']} questions, served {figures['served']:.3f}, "
                      f"offered a suggestion {figures['suggested']:.3f}")
    console.print(f"match latency (embedding included): p50 {report.latency_ms_p50} ms, p95 {report.latency_ms_p95} ms; "
                  f"the match alone: p50 {report.match_ms_p50} ms")
