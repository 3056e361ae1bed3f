"""``supportdesk router calibrate`` and ``supportdesk eval``: measure before you trust."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.settings import PROJECT_ROOT

ROUTE_SET = PROJECT_ROOT / "eval" / "route_set.jsonl"
EMANUAL = PROJECT_ROOT.parent / "shared" / "datasets" / "emanual"

router_app = typer.Typer(help="Calibrate and inspect the router.", no_args_is_help=True)


def _router_and_kb(appctx: AppContext):  # noqa: ANN202
    from supportdesk.router import Router

    kb = appctx.built_knowledge_base()  # the best document score is one of the router's signals
    cfg = appctx.settings.router
    return Router(kb.embedder.embed_documents, cfg.weights, cfg.threshold), kb


def _load_routes(path: Path):  # noqa: ANN202
    from supportdesk.answers.evaluation import load_route_set

    try:
        return load_route_set(path)
    except (OSError, ValueError) as exc:
        fail(str(exc))


def write_router_settings(toml_path: Path, weights: list[float], threshold: float) -> None:
    """Replace (or add) the [router] weights/threshold in a TOML file, keeping everything else."""
    text = toml_path.read_text() if toml_path.exists() else ""
    block = f"weights = {json.dumps(weights)}\nthreshold = {threshold}\n"
    section = re.search(r"(?ms)^\[router\]\n(.*?)(?=^\[|\Z)", text)
    if section:
        body = re.sub(r"(?m)^(weights|threshold)\s*=.*\n?", "", section.group(1))
        text = text[: section.start(1)] + block + body + text[section.end(1):]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + "[router]\n" + block
    toml_path.write_text(text)


@router_app.command("calibrate")
def calibrate_cmd(
    ctx: typer.Context,
    route_set: Annotated[Path, typer.Option("--set", help="Labelled messages (JSONL: text, route, split).")] = ROUTE_SET,
    target: Annotated[
        Optional[float], typer.Option("--target-escalation", min=0.0, max=1.0, help="Send this share to grounded.")
    ] = None,
    write: Annotated[
        Optional[Path], typer.Option("--write", help="Save weights and threshold into this TOML file's [router].")
    ] = None,
) -> None:
    """Fit the router's weights and threshold on the calibration split; report the held-out split."""
    from supportdesk.answers.evaluation import evaluate_routes

    router, kb = _router_and_kb(ctx.obj)
    rows = _load_routes(route_set)
    report = evaluate_routes(router, kb, rows, fit=True, target_escalation=target)
    cal = report.calibration
    assert cal is not None
    console.print(f"calibrated on {cal.n} messages: weights {cal.weights}, threshold {cal.threshold}")
    console.print(f"calibration accuracy {cal.train_accuracy:.3f}, escalation rate {cal.escalation_rate:.2f}")
    console.print(f"[bold]held-out accuracy {report.heldout_accuracy:.3f}[/] on {report.heldout_n} messages {report.confusion}")
    for miss in report.mistakes:
        console.print(f"  [yellow]missed[/] {escape(miss['text'])!s} (expected {miss['expected']})")
    if write is not None:
        write_router_settings(write, cal.weights, cal.threshold)
        console.print(f"saved to {write} [router]")


def evaluate(
    ctx: typer.Context,
    route_set: Annotated[Path, typer.Option("--set", help="Labelled route set (JSONL).")] = ROUTE_SET,
    emanual: Annotated[Path, typer.Option("--emanual", help="E-Manual dataset folder.")] = EMANUAL,
    n: Annotated[int, typer.Option("-n", min=1, help="E-Manual questions per sample (answerable and unanswerable).")] = 30,
    skip_answers: Annotated[bool, typer.Option("--routes-only", help="Only the route accuracy (fast).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Route accuracy on the held-out set, and answer quality / citations / abstention on the E-Manual."""
    from supportdesk.answers.evaluation import evaluate_emanual, evaluate_routes
    from supportdesk.models import BackendError, create_backend

    appctx: AppContext = ctx.obj
    router, kb = _router_and_kb(appctx)
    routes = evaluate_routes(router, kb, _load_routes(route_set))
    figures: dict[str, object] = {"route_accuracy_heldout": routes.heldout_accuracy, "route_heldout_n": routes.heldout_n}
    answers = None
    if not skip_answers:
        if not emanual.exists():
            fail(f"E-Manual dataset not found at {emanual}: pass --emanual DIR or --routes-only")
        try:
            backend = create_backend(appctx.settings)
            with Progress(console=err_console, transient=True) as bar:
                task = bar.add_task("E-Manual", total=2 * n)
                answers = evaluate_emanual(appctx.settings, backend, emanual, n=n,
                                           progress=lambda done, total, q: bar.update(task, completed=done, total=total))
        except BackendError as exc:
            fail(str(exc))
        figures["emanual"] = {
            "systems": answers.systems, "marker_validity": answers.marker_validity,
            "markers_total": answers.markers_total, "supported_rate": (
                sum(answers.supported_rates) / len(answers.supported_rates) if answers.supported_rates else None),
            "fallback_rate": answers.fallback_rate, "answered_rate": answers.answered_rate,
            "abstained_unanswerable_rate": answers.abstained_unanswerable_rate, "ttft_ms_p50": answers.ttft_ms_p50,
        }
    if as_json:
        print(json.dumps(figures))
        return
    table = Table(title="supportdesk evaluation")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row(f"route accuracy, held-out ({routes.heldout_n} messages)", f"{routes.heldout_accuracy:.3f}")
    if answers is not None:
        for name, scores in answers.systems.items():
            table.add_row(f"E-Manual token F1 / ROUGE-L: {name} (n={scores['n']})",
                          f"{scores['token_f1']:.3f} / {scores['rouge_l']:.3f}")
        validity = answers.marker_validity
        table.add_row(f"citation markers valid before clean-up ({answers.markers_total} markers)",
                      "-" if validity is None else f"{validity:.3f}")
        em = figures["emanual"]
        table.add_row("supported sentences (model's grounded answers)",
                      "-" if em["supported_rate"] is None else f"{em['supported_rate']:.3f}")  # type: ignore[index]
        table.add_row("grounded answers replaced by quoted sources", f"{answers.fallback_rate:.3f}")
        table.add_row("answerable questions answered", f"{answers.answered_rate:.3f}")
        table.add_row("unanswerable questions handed off", f"{answers.abstained_unanswerable_rate:.3f}")
        if answers.ttft_ms_p50 is not None:
            table.add_row("grounded TTFT p50 (ms)", f"{answers.ttft_ms_p50:.0f}")
    console.print(table)
