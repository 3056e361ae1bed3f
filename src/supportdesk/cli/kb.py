"""``supportdesk kb``: build, search and inspect the knowledge-base index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.help import App

app = App(help="Build, search and inspect the knowledge base.", no_args_is_help=True)


@app.callback()
def _through_server(ctx: typer.Context) -> None:
    """With --server, only build, search, stats go through the team server; the rest work on local files."""
    if ctx.obj.server and ctx.invoked_subcommand not in ('build', 'search', 'stats'):
        ctx.obj.local_only(f"kb {ctx.invoked_subcommand}")


def build_with_progress(appctx: AppContext, force: bool = False):
    """Run a reload with a progress bar on stderr; returns the ReloadReport."""
    from supportdesk.kb.index import Progress as Step

    kb = appctx.knowledge_base()
    with Progress(
        TextColumn("[bold]{task.description:<9}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[detail]}", style="dim"),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("loading", total=None, detail="embedding model")
        kb.embedder_info  # noqa: B018 - load the model under the bar, not silently

        def on_step(step: Step) -> None:
            bar.update(task, description=step.stage, completed=step.done, total=step.total, detail=step.detail[-50:])

        report = kb.reload(progress=on_step, force=force)
    return kb, report


def remote_reload(appctx: AppContext):
    """A team server's reload (admin token), with its progress events on the bar."""
    from supportdesk.kb.index import Progress as Step
    from supportdesk.kb.index import ReloadInProgress
    from supportdesk.models.base import BackendError

    with Progress(TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task("reload", total=None)

        def on_step(step: Step) -> None:
            bar.update(task, description=step.stage, completed=step.done, total=step.total)

        try:
            return appctx.remote.reload_kb(on_step)
        except (BackendError, ReloadInProgress) as exc:
            fail(str(exc))


@app.command("build")
def build(
    ctx: typer.Context,
    kb_dir: Annotated[Path | None, typer.Option("--kb", help="Folder to index (overrides settings).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Re-embed every file, ignoring the current index.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Index the KB folder: only added or changed files are embedded; removed files disappear.

    Runs at nice 10: on a box where agents chat with the embedded model, an index build is the
    work that can wait (it takes all of an idle CPU all the same).
    """
    import os

    try:
        os.nice(10)
    except OSError:
        pass
    appctx: AppContext = ctx.obj
    if appctx.server and (kb_dir is not None or force):
        fail("--kb and --force change the server's own files: run them on the server's machine")
    if kb_dir is not None:
        appctx.overrides["kb_dir"] = kb_dir
        appctx.__dict__.pop("settings", None)
    report = remote_reload(appctx) if appctx.server else build_with_progress(appctx, force=force)[1]
    for skipped in report.skipped:
        err_console.print(f"[yellow]skipped[/] {escape(skipped.rel)}: {escape(skipped.reason)}")
    for rel in report.kept_previous:
        err_console.print(f"[yellow]kept previous version of[/] {escape(rel)}")
    if as_json:
        print(json.dumps(report.to_json()))
    if not report.ok:
        fail(report.error or "reload failed")
    if as_json:
        return
    console.print(
        f"[bold green]index ready[/] {report.generation}  "
        f"files: {len(report.added)} added, {len(report.changed)} changed, {len(report.removed)} removed, "
        f"{len(report.unchanged)} unchanged, {len(report.skipped)} skipped  "
        f"chunks: +{report.chunks_added} −{report.chunks_removed} = {report.chunks_total}  "
        f"({report.seconds:.1f} s"
        + (f", {report.embedded_chunks_per_s:.0f} chunks/s embedded)" if report.chunks_added else ")")
    )
    if report.calibration:
        console.print(f"[dim]self-calibration: {escape(report.calibration)}[/]")


def _print_hits(query: str, hits: list[dict], timings: dict, show_text: bool) -> None:
    """Hits as ``kb search --json`` has them (local or from a team server)."""
    table = Table(title=f"{escape(query)}  ({timings.get('embed_ms', 0):.1f} ms embed, "
                        f"{timings.get('search_ms', 0):.1f} ms search)")
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("source", overflow="fold")
    table.add_column("heading", overflow="fold")
    table.add_column("text" if show_text else "snippet", overflow="fold")
    for hit in hits:
        where = hit["source"] + (f" p.{hit['page']}" if hit.get("page") else "")
        text = hit["text"] if show_text else hit["text"].replace("\n", " ")[:160]
        table.add_row(str(hit["rank"]), f"{hit['score']:.3f}", escape(where), escape(hit["heading"] or hit["title"]),
                      escape(text))
    console.print(table)


@app.command("search")
def search(
    ctx: typer.Context,
    query: Annotated[str | None, typer.Argument(help="What to look for.")] = None,
    k: Annotated[int | None, typer.Option("-k", "--top-k", min=1, max=100, help="Hits to return.")] = None,
    queries: Annotated[
        Path | None, typer.Option("--queries", help="File with one query per line ('-' for stdin).")
    ] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="hybrid | dense | bm25 (default: settings).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per query.")] = False,
    full: Annotated[bool, typer.Option("--full", help="Show whole chunk texts.")] = False,
) -> None:
    """Search the index; each hit shows its cosine score, source file and heading."""
    appctx: AppContext = ctx.obj
    if (query is None) == (queries is None):
        fail("give either a QUERY or --queries FILE")
    if mode is not None and mode not in ("hybrid", "dense", "bm25"):
        fail(f"--mode must be hybrid, dense or bm25, not '{mode}'")
    if queries is not None:
        import sys

        try:
            raw = sys.stdin.buffer.read() if str(queries) == "-" else queries.read_bytes()
            lines = raw.decode("utf-8-sig", errors="surrogateescape").splitlines()
        except OSError as exc:
            fail(f"cannot read queries file {queries}: {exc}")
        items = [line.strip() for line in lines if line.strip()]
    else:
        items = [query or ""]
    from supportdesk.sanitize import clean_question

    items = [clean for clean in (clean_question(item) for item in items) if clean]
    if not items:
        fail("the query is empty: give words to search for")
    if appctx.server:
        def run(item: str) -> dict:
            return appctx.through_server(lambda remote: remote.search(item, k=k, mode=mode))
    else:
        from supportdesk.wire import search_to_json

        kb = appctx.built_knowledge_base()

        def run(item: str) -> dict:
            return search_to_json(item, kb.search(item, k=k, mode=mode))  # type: ignore[arg-type]

    for item in items:
        found = run(item)
        if as_json:
            print(json.dumps(found), flush=True)
        else:
            _print_hits(item, found["hits"], found["timings_ms"], full)


def _questions_line(questions: dict) -> str:
    count = questions.get("count", 0)
    if not count:
        return "no vectors (the KB is not mostly FAQ entries titled by questions, or question_weight = 0)"
    return f"{count} with vectors: a FAQ entry is also found by its question (weight {questions.get('weight')})"


def brand_rows(brand: dict) -> list[tuple[str, str]]:
    """The brand profile in use, where it comes from, and what is wrong with it."""
    if not brand:
        return []
    name = brand.get("company") or "no company named"
    rows = [("brand profile", f"{name} ({brand.get('assistant_name')}) from {brand.get('source')}")]
    rows += [("brand warning", warning) for warning in brand.get("warnings", [])]
    return rows


def calibration_rows(calibration: dict | None, in_use: dict) -> list[tuple[str, str]]:
    from supportdesk.kb.calibration import Calibration

    measured = Calibration.from_json(calibration) if calibration else None
    applied = not in_use or (in_use.get("handoff") or {}).get("from") == "self-calibrated"
    rows = [("self-calibration", measured.summary(applied) if measured else "not run (run 'supportdesk kb calibrate')")]
    if in_use:
        weight, handoff, router = in_use["dense_weight"], in_use["handoff"], in_use["router"]
        rows += [
            ("fusion dense weight", f"{weight['value']} ({weight['from']})"),
            ("question headings", _questions_line(in_use.get("question_vectors") or {})),
            ("hand-off", f"below {handoff['abstain_below']} ({handoff['from']})"),
            ("router", f"threshold {router['threshold']} ({router['from']}), {router['kb_examples']} examples from this KB"),
        ]
    return rows


@app.command("calibrate")
def calibrate(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration as JSON.")] = False,
) -> None:
    """Measure the serving index on pseudo-questions made from the KB itself (no labels needed):
    fusion weight, hand-off model and router examples; served as a new generation (same vectors)."""
    from supportdesk.kb.index import KBFolderMissing, ReloadInProgress
    from supportdesk.kb.store import IndexBusy, IndexIntegrityError

    ctx.obj.local_only("kb calibrate")
    kb = ctx.obj.knowledge_base()
    try:
        with Progress(TextColumn("[bold]calibrate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=err_console, transient=True) as bar:
            task = bar.add_task("calibrate", total=None)
            calibration, generation = kb.recalibrate(lambda step: bar.update(task, completed=step.done, total=step.total))
    except (KBFolderMissing, ReloadInProgress, IndexBusy, IndexIntegrityError) as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps({"generation": generation, "calibration": calibration.to_json(), "in_use": kb.values_in_use()}))
        return
    console.print(f"[bold green]calibrated[/] {generation}: {escape(calibration.summary())}")
    for key, value in calibration_rows(calibration.to_json(), kb.values_in_use())[1:]:
        console.print(f"  {key}: {escape(value)}")


@app.command("stats")
def stats(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """What is indexed: files by type, chunks, embedder, build time, skipped files."""
    from types import SimpleNamespace

    from supportdesk.cpu import describe
    from supportdesk.kb.store import IndexIntegrityError
    from supportdesk.wire import stats_to_json

    appctx: AppContext = ctx.obj
    if appctx.server:
        data = stats_to_json(appctx.through_server(lambda remote: remote.kb_stats()))
    else:
        try:
            data = stats_to_json(appctx.knowledge_base().stats())
        except IndexIntegrityError as exc:
            fail(f"{exc}. Rebuild with 'supportdesk kb build --force'.")
    if as_json:
        print(json.dumps(data))
        return
    info = SimpleNamespace(**data)
    if info.warning:
        err_console.print(f"[yellow]warning:[/] {escape(info.warning)}")
    if info.generation is None:
        console.print(f"no index yet in {escape(info.index_dir)}: run 'supportdesk kb build'")
        return
    table = Table(show_header=False, title="knowledge base")
    for key, value in [
        ("KB folder", info.kb_dir),
        ("index", f"{info.index_dir}/{info.generation}"),
        ("built", info.built_at),
        ("files", f"{info.files} ({', '.join(f'{n} {k}' for k, n in sorted(info.by_kind.items()))})"),
        ("chunks", info.chunks),
        ("embedder", info.embedder),
        ("vector store", getattr(info, "vector_store", "faiss")),
        ("on disk", f"{info.disk_bytes / 1e6:.1f} MB"),
        ("CPU", describe(appctx.settings.embedding)),
        ("skipped", len(info.skipped)),
        *calibration_rows(info.calibration, info.in_use),
        *brand_rows(getattr(info, "brand", None) or {}),
    ]:
        table.add_row(key, escape(str(value)))
    console.print(table)
    cluster = getattr(info, "cluster", None)
    if cluster:  # replicas sharing one generation (kb/cluster.py)
        console.print(f"cluster: current generation {escape(str(cluster.get('current')))}"
                      + (f" (by {escape(str(cluster['current_by']))})" if cluster.get("current_by") else "")
                      + f"; serving it: {escape(', '.join(cluster.get('serving', [])) or 'none')}"
                      + (f"; behind: {escape(', '.join(cluster['behind']))}" if cluster.get("behind") else "")
                      + (f"; reloading: {escape(str(cluster['reloading']))}" if cluster.get("reloading") else ""))
    for item in info.skipped:
        console.print(f"  [yellow]skipped[/] {escape(item['file'])}: {escape(item['reason'])}")
