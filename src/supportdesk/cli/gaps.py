"""``supportdesk gaps``, ``supportdesk insights`` and ``supportdesk eval-gaps``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.help import App
from supportdesk.sanitize import safe_text

app = App(help="Knowledge gaps: unanswered questions grouped by meaning (trainers, admins).",
          invoke_without_command=True)

SinceOpt = Annotated[str | None, typer.Option(
    "--since", help="Only answers from then on: a date (2026-12-01), a time, or days back (7d).")]
QuestionsOpt = Annotated[Path | None, typer.Option(
    "--questions", help="Group this file's questions (one per line) instead of the history's.")]
TopOpt = Annotated[int | None, typer.Option("--top", min=1, help="Only the first N gaps.")]


def _since(text: str | None) -> float | None:
    from supportdesk.insights.records import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        fail(str(exc))


def _kb_search(appctx: AppContext) -> tuple[Any, Any]:
    """(embed, search) of the local KB; search is None (with a warning) when there is no index to compare with."""
    from supportdesk.insights.gaps import kb_search
    from supportdesk.kb.embeddings import EmbeddingUnavailable
    from supportdesk.kb.store import IndexIntegrityError

    kb = appctx.knowledge_base()
    try:
        embed = kb.embedder.embed_documents
    except EmbeddingUnavailable as exc:
        fail(str(exc))
    try:
        search = kb_search(kb)
    except IndexIntegrityError as exc:
        err_console.print(f"[yellow]warning:[/] {escape(str(exc))}: no closest sections")
        search = None
    if search is None:
        err_console.print("[yellow]warning:[/] no KB index yet ('supportdesk kb build'): no closest sections")
    return embed, search


def compute_gaps(ctx: typer.Context, since: str | None, questions: Path | None, top: int | None) -> list[dict[str, Any]]:
    appctx: AppContext = ctx.obj
    from supportdesk.insights.gaps import find_gaps, gap_questions, read_questions

    if questions is not None:
        try:
            items = read_questions(questions)
        except FileNotFoundError:
            fail(f"{questions}: no such file")
        except UnicodeDecodeError:
            fail(f"{questions}: not UTF-8 text (one question per line)")
        except OSError as exc:
            fail(f"{questions}: {exc.strerror or exc}")
        if not items:
            fail(f"{questions}: no questions (one per line)")
        embed, search = _kb_search(appctx) if not appctx.server else (None, None)
        if embed is None:
            from supportdesk.kb import KnowledgeBase

            embed = KnowledgeBase(appctx.settings).embedder.embed_documents
        return [g.to_json() for g in find_gaps(items, embed, search, top=top)]
    start = _since(since)
    if appctx.server:
        return appctx.through_server(lambda remote: remote.gaps(start, top=top))
    from supportdesk.history import HistoryError, open_history
    from supportdesk.insights.records import read_turns

    try:
        store = open_history(appctx.settings)
    except (HistoryError, OSError) as exc:
        fail(f"cannot open the history: {exc}")
    try:
        turns = read_turns(store, start)
    except HistoryError as exc:
        fail(str(exc))
    finally:
        store.close()
    items = gap_questions(turns)
    if not items:
        return []
    embed, search = _kb_search(appctx)
    return [g.to_json() for g in find_gaps(items, embed, search, top=top)]


@app.callback()
def gaps(
    ctx: typer.Context,
    since: SinceOpt = None,
    questions: QuestionsOpt = None,
    top: TopOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per gap, one per line.")] = False,
) -> None:
    """Hand-offs, product-question declines, 👎 answers and rewritten answers, grouped by meaning; largest and
    most recent first, with the closest KB sections. 'gaps draft N --out kb/page.md' starts a page for gap N."""
    if ctx.invoked_subcommand is not None:
        return
    found = compute_gaps(ctx, since, questions, top)
    if as_json:
        for gap in found:
            print(json.dumps({k: v for k, v in gap.items() if k not in ("questions", "rewrites", "approved")}, ensure_ascii=False))
        return
    if not found:
        console.print("no gaps: nothing was handed off, declined as a product question, rated 👎 or rewritten"
                      if questions is None else "no gaps")
        return
    table = Table(title=f"knowledge gaps ({len(found)})")
    for col in ("gap", "size", "label", "closest section", "score", "latest"):
        table.add_column(col, overflow="fold")
    for gap in found:
        best = gap["closest"][0] if gap["closest"] else None
        latest = dt.datetime.fromtimestamp(gap["latest"], dt.UTC).strftime("%Y-%m-%d") if gap["latest"] else "-"
        table.add_row(str(gap["gap"]), str(gap["size"]), escape(safe_text(gap["label"])),
                      escape(safe_text(f"{best['source']} — {best['heading']}")) if best else "-",
                      f"{best['score']:.2f}" if best else "-", latest)
    console.print(table)


@app.command("draft")
def draft(
    ctx: typer.Context,
    number: Annotated[int, typer.Argument(min=1, help="The gap's number (as 'supportdesk gaps' lists them).")],
    out: Annotated[Path, typer.Option("--out", help="The Markdown file to write, e.g. kb/new-topic.md.")],
    since: SinceOpt = None,
    questions: QuestionsOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
) -> None:
    """Write a KB page draft for gap N (the answers agents wrote for it, else its questions as headings to fill)."""
    from supportdesk.insights.gaps import Gap, draft_page

    parent = ctx.parent
    since = since or (parent.params.get("since") if parent else None)
    questions = questions or (parent.params.get("questions") if parent else None)
    if out.exists() and not force:
        fail(f"{out} exists: pick another --out, or --force to overwrite it")
    found = compute_gaps(ctx, since, questions, None)
    if number > len(found):
        fail(f"no gap {number}: there are {len(found)}")
    data = found[number - 1]
    gap = Gap(data["gap"], data["size"], data["label"], data["members"], data["questions"], data["representatives"],
              data["closest"], data["answered_instead"], data["why"], data["latest"] or 0.0,
              [tuple(pair) for pair in data.get("rewrites", [])], [tuple(pair) for pair in data.get("approved", [])])
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(draft_page(gap), encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror or exc}")
    console.print(f"wrote {out}: a draft for gap {number} ({data['size']} question(s)); edit it, then "
                  "'supportdesk kb build' (or reload in the app)")


def insights_cmd(
    ctx: typer.Context,
    since: SinceOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="The report as one JSON object.")] = False,
    top_gaps: Annotated[int, typer.Option("--gaps", min=0, help="How many top gaps to include (0: none).")] = 5,
) -> None:
    """Per day: questions, route mix, hand-off rate, 👍/👎, approved hit rate, edit ratio, latency p50/p95 per
    stage; and the top gaps. Through --server: the team's (trainer, admin) or your own (agent)."""
    appctx: AppContext = ctx.obj
    start = _since(since)
    if appctx.server:
        report = appctx.through_server(lambda remote: remote.insights(start, top_gaps=top_gaps))
    else:
        from supportdesk.history import HistoryError, open_history
        from supportdesk.insights.stats import insights

        try:
            store = open_history(appctx.settings)
        except (HistoryError, OSError) as exc:
            fail(f"cannot open the history: {exc}")
        try:
            embed, search = _kb_search(appctx) if top_gaps else (None, None)
            report = insights(store, start, embed=embed, search=search, top_gaps=top_gaps)
        except HistoryError as exc:
            fail(str(exc))
        finally:
            store.close()
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
        return
    print_insights(report)


def print_insights(report: dict[str, Any]) -> None:
    from supportdesk.insights.stats import ROUTES

    total = report["total"]
    if not total["questions"]:
        console.print("no answers in the history" + (" since then" if report.get("since") else ""))
        return
    table = Table(title="per day")
    for col in ("day", "questions", *ROUTES, "hand-off rate", "👍", "👎", "approved", "edit ratio", "total p50",
                "total p95"):
        table.add_column(col, justify="right")

    def pct(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    for row in [*report["days"], {"day": "all", **total}]:
        lat = row["latency_ms"].get("total_ms") or {}
        table.add_row(row["day"], str(row["questions"]), *(str(row["routes"].get(r, 0)) for r in ROUTES),
                      pct(row["handoff_rate"]), str(row["thumbs_up"]), str(row["thumbs_down"]),
                      pct(row["approved_hit_rate"]), "-" if row["edit_ratio"] is None else f"{row['edit_ratio']:.2f}",
                      f"{lat['p50']:.0f} ms" if lat else "-", f"{lat['p95']:.0f} ms" if lat else "-")
    console.print(table)
    stages = Table(title="latency per stage (whole period)")
    for col in ("stage", "p50 ms", "p95 ms", "answers"):
        stages.add_column(col, justify="right")
    for stage, figures in total["latency_ms"].items():
        stages.add_row(stage.removesuffix("_ms"), f"{figures['p50']:.1f}", f"{figures['p95']:.1f}", str(figures["n"]))
    console.print(stages)
    if report.get("gaps"):
        gaps = Table(title="top gaps")
        for col in ("gap", "size", "label", "closest section"):
            gaps.add_column(col, overflow="fold")
        for gap in report["gaps"]:
            best = gap["closest"][0] if gap["closest"] else None
            gaps.add_row(str(gap["gap"]), str(gap["size"]), escape(safe_text(gap["label"])),
                         escape(safe_text(f"{best['source']} — {best['heading']} ({best['score']:.2f})")) if best else "-")
        console.print(gaps)


def eval_gaps(
    ctx: typer.Context,
    datasets: Annotated[Path | None, typer.Option("--datasets", help="The public sets' folder.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The figures as JSON.")] = False,
) -> None:
    """V-measure of the gap grouping on labelled public sets (faq_retrieval, E-Manual, social_dev, mtrag_dev):
    the resolution chosen on faq_retrieval's half a, every set reported on its half b."""
    from supportdesk.evaluation.datasets import SHARED
    from supportdesk.evaluation.gaps import evaluate_gaps

    appctx: AppContext = ctx.obj
    from supportdesk.kb import KnowledgeBase

    embed = KnowledgeBase(appctx.settings).embedder.embed_documents
    try:
        result = evaluate_gaps(embed, datasets or SHARED, progress=lambda s: err_console.print(f"[dim]{s}[/]"))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps(result.to_json()))
        return
    table = Table(title=f"gap grouping, V-measure ({result.params} chosen on faq_retrieval half a; "
                        f"whole set: the defaults, {result.defaults})")
    table.add_column("set", no_wrap=True)
    for col in ("questions", "labels", "half b", "own half-a choice", "half b (own)", "whole set", "groups"):
        table.add_column(col, justify="right")
    for s in result.sets:
        table.add_row(s.name, str(s.questions), str(s.labels), f"{s.half_b_v:.3f}", s.own_params,
                      f"{s.own_half_b_v:.3f}", f"{s.full_v:.3f}", str(s.full_groups))
    console.print(table)
