"""``supportdesk router calibrate`` and ``supportdesk eval``: measure before you trust."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.help import App
from supportdesk.settings import PROJECT_ROOT, RetrievalSettings

ROUTE_SET = PROJECT_ROOT / "eval" / "route_set.jsonl"
UNANSWERABLE_SET = PROJECT_ROOT / "eval" / "unanswerable.jsonl"
EVAL_DIR = PROJECT_ROOT / "eval"
CONFIRMATION = PROJECT_ROOT / "eval" / "handoff_confirmation.jsonl"
EMANUAL = PROJECT_ROOT.parent / "shared" / "datasets" / "emanual"

T = TypeVar("T")
# Options shared by 'router calibrate-abstain' and 'eval'.
UnanswerableOption = Annotated[
    Path, typer.Option("--unanswerable", help="Product questions the KB does not cover (JSONL: text, split).")
]

router_app = App(help="Calibrate and inspect the router.", no_args_is_help=True)


def _router_and_kb(appctx: AppContext):
    from supportdesk.router import Router

    kb = appctx.built_knowledge_base()  # the best document score is one of the router's signals
    weights, threshold, _ = kb.router_model()
    from supportdesk.brand import load_brand

    router = Router(kb.embedder.embed_documents, weights, threshold)
    router.use_kb_examples(kb.router_examples())  # as the answer pipeline does
    router.use_lexicon(load_brand(appctx.settings).lexicon)  # the brand's product names and codes, as the pipeline
    return router, kb


def _read(loader: Callable[[Path], T], path: Path) -> T:
    """Run one of the labelled-set loaders; a bad or missing file is a message, not a traceback."""
    try:
        return loader(path)
    except (OSError, ValueError) as exc:
        fail(str(exc))
        raise


def _load_routes(path: Path) -> list[dict[str, str]]:
    from supportdesk.evaluation.scoring import load_route_set

    return _read(load_route_set, path)


def write_router_settings(toml_path: Path, values: dict[str, object]) -> None:
    """Replace (or add) keys of the TOML file's [router] table, keeping everything else."""
    text = toml_path.read_text() if toml_path.exists() else ""
    block = "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
    section = re.search(r"(?ms)^\[router\]\n(.*?)(?=^\[|\Z)", text)
    if section:
        keys = "|".join(re.escape(key) for key in values)
        body = re.sub(rf"(?m)^({keys})\s*=.*\n?", "", section.group(1))
        text = text[: section.start(1)] + block + body + text[section.end(1):]
    else:
        text = (text.rstrip() + "\n\n" if text.strip() else "") + "[router]\n" + block
    toml_path.write_text(text)


def _targets(appctx: AppContext, write: Path | None, write_kb: bool) -> list[Path]:
    from supportdesk.kb.index import LABELLED_FILE

    return ([write] if write is not None else []) + ([Path(appctx.settings.kb_dir) / LABELLED_FILE] if write_kb else [])


def _load_unanswerable(path: Path) -> list[dict[str, str]]:
    from supportdesk.evaluation.abstention import load_unanswerable

    return _read(load_unanswerable, path)


def _load_adjudications() -> dict[str, dict[str, str]]:
    from supportdesk.evaluation.abstention import load_adjudications

    return _read(load_adjudications, EVAL_DIR)


def _load_confirmation(path: Path) -> list[dict]:
    from supportdesk.evaluation.abstention import load_confirmation

    return _read(load_confirmation, path) if path.exists() else []


def _rate(value: object) -> str:
    return "-" if value is None else f"{value:.3f}"


def abstention_table(rows: list[dict], title: str) -> Table:
    table = Table(title=title)
    for name, justify in (("questions", "left"), ("answerable", "right"), ("answered", "right"),
                          ("unanswerable", "right"), ("handed off", "right"), ("adjudicated", "right"),
                          ("handed off (adj.)", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        adjudicated = row.get("unanswerable_adjudicated") or 0
        table.add_row(row["set"], str(row["answerable"]), _rate(row["answered_rate"]),
                      str(row["unanswerable"]), _rate(row["abstained_rate"]),
                      str(adjudicated) if adjudicated else "-",
                      _rate(row["abstained_adjudicated_rate"]) if adjudicated else "-")
    return table


@router_app.command("calibrate")
def calibrate_cmd(
    ctx: typer.Context,
    route_set: Annotated[Path, typer.Option("--set", help="Labelled messages (JSONL: text, route, split).")] = ROUTE_SET,
    target: Annotated[
        float | None, typer.Option("--target-escalation", min=0.0, max=1.0, help="Send this share to grounded.")
    ] = None,
    write: Annotated[
        Path | None, typer.Option("--write", help="Save weights and threshold into this TOML file's \\[router] table.")
    ] = None,
    write_kb: Annotated[bool, typer.Option(
        "--write-kb", help="Save them with the KB folder (its labelled values, used for these docs only)."
    )] = False,
) -> None:
    """Fit the router's weights and threshold on the calibration split; report the held-out split."""
    from supportdesk.evaluation.scoring import evaluate_routes

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
    for path in _targets(ctx.obj, write, write_kb):
        write_router_settings(path, {"weights": cal.weights, "threshold": cal.threshold})
        console.print(f"saved to {path} [router]")


@router_app.command("calibrate-abstain")
def calibrate_abstain_cmd(
    ctx: typer.Context,
    route_set: Annotated[Path, typer.Option("--set", help="Labelled messages; 'grounded' ones are answerable.")] = ROUTE_SET,
    unanswerable: UnanswerableOption = UNANSWERABLE_SET,
    emanual: Annotated[
        Path, typer.Option("--emanual", help="E-Manual dataset folder, for the benchmark table (its own calibration).")
    ] = EMANUAL,
    answer_rate: Annotated[
        float, typer.Option("--answer-rate", min=0.5, max=1.0, help="Share of answerable questions still answered.")
    ] = 0.9,
    show_misses: Annotated[bool, typer.Option("--misses", help="List the held-out questions decided wrongly.")] = False,
    write: Annotated[
        Path | None, typer.Option("--write", help="Save the weights and threshold into this TOML file's \\[router] table.")
    ] = None,
    write_kb: Annotated[bool, typer.Option(
        "--write-kb", help="Save them with the KB folder (its labelled values, used for these docs only)."
    )] = False,
) -> None:
    """Fit the hand-off (answerability) model on the calibration splits; report the held-out ones."""
    from supportdesk.evaluation.abstention import calibrate_emanual, calibrate_product

    appctx: AppContext = ctx.obj
    kb = appctx.built_knowledge_base()
    dataset = emanual if emanual.exists() else None
    if dataset is None:
        err_console.print(f"[yellow]E-Manual not found at {emanual}: no benchmark table[/]")
    routes, questions = _load_routes(route_set), _load_unanswerable(unanswerable)
    with console.status("searching the calibration questions..."):
        try:
            product = calibrate_product(kb, routes, questions, answer_rate=answer_rate,
                                        confirmation_rows=_load_confirmation(CONFIRMATION))
        except ValueError as exc:
            fail(f"{exc}: {route_set} needs 'grounded' rows and {unanswerable} rows in both splits "
                 "('calibration' and 'heldout')")
    fit = product.fit
    console.print(f"fitted on {fit.n_answerable} answerable + {fit.n_unanswerable} unanswerable questions of the product "
                  f"KB's calibration split: weights {fit.weights} over \\[best score, coverage, missing, bias]; "
                  f"abstain_below {fit.threshold}")
    console.print(abstention_table(product.calibration + product.heldout,
                                   "product KB: calibration, held-out, confirmation (written after the model was fixed)"))
    rows = product.heldout
    if dataset is not None:
        with console.status("E-Manual benchmark: calibrating on one half, measuring the other..."):
            bench = calibrate_emanual(appctx.settings, dataset, _load_adjudications(), answer_rate)
        console.print(abstention_table(bench.calibration + bench.heldout,
                                       f"E-Manual benchmark (own calibration: weights {bench.fit.weights}, "
                                       f"abstain_below {bench.fit.threshold})"))
        rows = rows + bench.heldout
    if show_misses:
        for row in rows:
            for text in row["answered_unanswerable"]:
                console.print(f"  [yellow]answered[/] {escape(text)} [dim]({row['set']}, unanswerable)[/]")
            for text in row["handed_off_answerable"]:
                console.print(f"  [yellow]handed off[/] {escape(text)} [dim]({row['set']}, answerable)[/]")
    for path in _targets(appctx, write, write_kb):
        write_router_settings(path, {"answerability_weights": fit.weights, "abstain_below": fit.threshold})
        console.print(f"saved to {path} [router]")


def evaluate(
    ctx: typer.Context,
    route_set: Annotated[Path, typer.Option("--set", help="Labelled route set (JSONL).")] = ROUTE_SET,
    unanswerable: UnanswerableOption = UNANSWERABLE_SET,
    emanual: Annotated[Path, typer.Option("--emanual", help="E-Manual dataset folder.")] = EMANUAL,
    n: Annotated[int, typer.Option(
        "-n", min=1, help="E-Manual answerable questions answered by all three systems (60 unanswerable, fixed)."
    )] = 30,
    skip_answers: Annotated[
        bool, typer.Option("--routes-only", help="Only route accuracy and the product KB's hand-off (fast).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Route accuracy on the held-out set, and answer quality / citations / abstention on the E-Manual."""
    from supportdesk.evaluation.scoring import evaluate_emanual, evaluate_routes
    from supportdesk.models import BackendError, create_backend

    appctx: AppContext = ctx.obj
    router, kb = _router_and_kb(appctx)
    from supportdesk.evaluation.abstention import measure_abstention

    route_rows = _load_routes(route_set)
    routes = evaluate_routes(router, kb, route_rows)
    product_rows = measure_abstention(kb, route_rows, _load_unanswerable(unanswerable), _load_confirmation(CONFIRMATION))
    figures: dict[str, object] = {
        "route_accuracy_heldout": routes.heldout_accuracy, "route_heldout_n": routes.heldout_n,
        "product_kb_abstention": [{k: v for k, v in row.items() if not isinstance(v, list)} for row in product_rows],
    }
    answers = None
    if not skip_answers:
        if not emanual.exists():
            fail(f"E-Manual dataset not found at {emanual}: pass --emanual DIR or --routes-only")
        try:
            backend = create_backend(appctx.settings)
            with Progress(console=err_console, transient=True) as bar:
                task = bar.add_task("E-Manual (calibrating the hand-off first)", total=None)
                answers = evaluate_emanual(appctx.settings, backend, emanual, n=n,
                                           adjudications=_load_adjudications(),
                                           progress=lambda done, total, q: bar.update(
                                               task, completed=done, total=total, description="E-Manual"))
        except BackendError as exc:
            fail(str(exc))
        figures["emanual"] = {
            "systems": answers.systems, "marker_validity": answers.marker_validity,
            "markers_total": answers.markers_total, "supported_rate": (
                sum(answers.supported_rates) / len(answers.supported_rates) if answers.supported_rates else None),
            "fallback_rate": answers.fallback_rate, "answered_rate": answers.answered_rate,
            "abstained_unanswerable_rate": answers.abstained_unanswerable_rate, "ttft_ms_p50": answers.ttft_ms_p50,
            "unanswerable_n": answers.unanswerable_n, "adjudicated_n": answers.adjudicated_n,
            "abstained_adjudicated_rate": answers.abstained_adjudicated_rate,
            "answerability": {k: v for k, v in answers.answerability.items() if k != "retrieval_only"} | {
                "retrieval_only": [{k: v for k, v in row.items() if not isinstance(v, list)}
                                   for row in answers.answerability["retrieval_only"]]},
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
        n_answerable = int(answers.systems["grounded"]["n"])
        table.add_row(f"E-Manual sample A, pipeline: answerable answered (n={n_answerable})", f"{answers.answered_rate:.3f}")
        table.add_row(f"E-Manual sample A, pipeline: unanswerable handed off (n={answers.unanswerable_n})",
                      f"{answers.abstained_unanswerable_rate:.3f}")
        table.add_row(f"E-Manual sample A, pipeline: adjudicated unanswerable handed off (n={answers.adjudicated_n})",
                      _rate(answers.abstained_adjudicated_rate))
        for only in answers.answerability["retrieval_only"]:
            name = only["set"].removeprefix("E-Manual eval half, ")
            table.add_row(f"E-Manual {name}, hand-off decision: answered (n={only['answerable']}) / handed off "
                          f"(n={only['unanswerable']}) / adjudicated (n={only['unanswerable_adjudicated']})",
                          f"{_rate(only['answered_rate'])} / {_rate(only['abstained_rate'])} / "
                          f"{_rate(only['abstained_adjudicated_rate'])}")
        if answers.ttft_ms_p50 is not None:
            table.add_row("grounded TTFT p50 (ms)", f"{answers.ttft_ms_p50:.0f}")
    for product in product_rows:
        table.add_row(f"{product['set']}: answerable answered (n={product['answerable']})", _rate(product["answered_rate"]))
        table.add_row(f"{product['set']}: unanswerable handed off (n={product['unanswerable']})",
                      _rate(product["abstained_rate"]))
    console.print(table)


PUBLIC_SETS = ("faq_retrieval", "emanual_tv", "mtrag_dev")


def _retrieval_table(name: str, rows: list, info: dict) -> Table:
    table = Table(title=f"{name}: {info['documents']} documents, {info['chunks']} chunks, {rows[0].n} questions")
    for column in ("system", "hit@1", "hit@5", "MRR@10"):
        table.add_column(column, justify="left" if column == "system" else "right")
    for row in rows:
        table.add_row(row.name, f"{row.hit1:.3f}", f"{row.hit5:.3f}", f"{row.mrr:.3f}")
    return table


def _conversation_table(rows: list[dict]) -> Table:
    table = Table(title="mtrag_dev: last turn of each conversation")
    columns = (("turns", "turns"), ("answerable", "answerable n"), ("answered", "answered"), ("grounded", "grounded"),
               ("gold_top5", "gold in top-5"), ("gold_cited", "gold cited"), ("unanswerable", "unanswerable n"),
               ("handed_off", "handed off"), ("underspecified", "under-specified n"),
               ("clarified_or_handed_off", "clarified or handed off"))
    for _, title in columns:
        table.add_column(title, justify="left" if title == "turns" else "right")
    for row in rows:
        table.add_row(*[row[key] if isinstance(row[key], str) else
                        (str(row[key]) if isinstance(row[key], int) else _rate(row[key])) for key, _ in columns])
    return table


def evaluate_public(
    ctx: typer.Context,
    sets: Annotated[str, typer.Option("--sets", help=f"Comma-separated: {', '.join(PUBLIC_SETS)}.")] = ",".join(PUBLIC_SETS),
    generate: Annotated[bool, typer.Option(
        "--generate", help="mtrag_dev: let the model write the answerable ones, to check the gold passage is cited (slow)."
    )] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """The product's defaults plus self-calibration on the public sets in ../shared/datasets: nothing tuned per set.

    faq_retrieval and emanual_tv: hit@1/5 and MRR@10 for dense, BM25, the hybrid at the default
    weight and the hybrid at the weight the index chose for itself. mtrag_dev: per last turn,
    answered / grounded / gold passage in the top 5 / cited, unanswerable handed off,
    under-specified clarified or handed off; first turns and later turns apart.
    """
    from supportdesk.evaluation import datasets
    from supportdesk.evaluation.conversations import evaluate_conversations
    from supportdesk.evaluation.retrieval import evaluate_retrieval

    wanted = [s.strip() for s in sets.split(",") if s.strip()]
    unknown = [s for s in wanted if s not in PUBLIC_SETS]
    if unknown:
        fail(f"unknown set(s) {', '.join(unknown)}: choose from {', '.join(PUBLIC_SETS)}")
    figures: dict[str, object] = {}
    for name in wanted:
        try:
            dataset = datasets.READERS[name]()
        except (OSError, ValueError) as exc:
            fail(str(exc))
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task(f"{name}: indexing and calibrating", total=None)

            def step(done: int, total: int, task=task, bar=bar, name=name) -> None:
                bar.update(task, completed=done, total=total, description=name)

            if name == "mtrag_dev":
                backend = None
                if generate:
                    from supportdesk.models import BackendError, create_backend

                    try:
                        backend = create_backend(ctx.obj.settings)
                    except BackendError as exc:
                        fail(str(exc))
                report = evaluate_conversations(dataset, backend, generate=generate, progress=step)
                figures[name] = {"rows": report.rows(), "calibration": report.calibration}
            else:
                rows, info = evaluate_retrieval(dataset, progress=step)
                figures[name] = {"rows": [r.to_json() for r in rows], **info}
        if not as_json:
            if name == "mtrag_dev":
                console.print(_conversation_table(figures[name]["rows"]))  # type: ignore[index]
            else:
                console.print(_retrieval_table(name, rows, info))
            calibration = figures[name].get("calibration")  # type: ignore[attr-defined]
            if calibration:
                from supportdesk.kb.calibration import Calibration

                measured = Calibration.from_json(calibration)
                if measured is not None:
                    # the set's KB is built with the default settings: their hand-off rule is the one in force
                    applied = RetrievalSettings().apply_calibrated_handoff
                    console.print(f"[dim]self-calibration: {escape(measured.summary(applied))}[/]")
    if as_json:
        print(json.dumps(figures))


def _social_table(summary: dict) -> Table:
    table = Table(title=f"social messages ({summary['n']}): per intent")
    for name in ("intent", "expected", "n", "as expected", "handed off", "declined", "brand voice", "passes check",
                 "model drafts passing", "automated", "names (draft / final)"):
        table.add_column(name, justify="left" if name in ("intent", "expected") else "right")
    for intent, row in summary["per_intent"].items():
        drafts = f"{row['drafts_passed']}/{row['drafts']}" if row["drafts"] else "-"
        table.add_row(intent, row["expected"], str(row["n"]), f"{row['ok']}/{row['n']}", str(row["handed_off"]),
                      str(row["declined"]), str(row["voice"]), f"{row['final_passed']}/{row['n']}", drafts,
                      f"{row['automated']}/{row['n']}" if intent == "identity" else "-",
                      f"{row['personal_names_draft']} / {row['personal_names_final']}")
    return table


def evaluate_social(
    ctx: typer.Context,
    social_set: Annotated[Path, typer.Option("--set", help="Messages (JSONL: id, intent, expected, message).")] = (
        PROJECT_ROOT.parent / "shared" / "datasets" / "social_dev" / "messages.jsonl"),
    backend: Annotated[str | None, typer.Option("--backend", help="embedded | ollama | openai (default: settings).")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="Adapter name, or 'none' for the base model.")] = None,
    classifier: Annotated[bool, typer.Option(
        "--classifier/--no-classifier",
        help="Also measure the policy alone: held-out half of eval/social_set.jsonl, and the route set's product "
        "questions it would hand off or decline.")] = True,
    emanual: Annotated[bool, typer.Option(
        "--emanual", help="Also the E-Manual TV questions on their own index, no brand profile (slow: indexes it).")] = False,
    show: Annotated[bool, typer.Option("--show", help="Print every message with its answer.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Everyday non-product messages through the whole pipeline: hand-offs, declines, brand-voice replies
    that pass the voice check, "are you a bot?", personal-name sign-offs; per intent."""
    from supportdesk.answers import AnswerPipeline
    from supportdesk.evaluation.social import (
        classifier_heldout,
        load_social_dev,
        product_questions_flagged,
        run_social,
        summarize,
    )
    from supportdesk.models import BackendError, create_backend, default_options

    appctx: AppContext = ctx.obj
    rows = _read(load_social_dev, social_set)
    kb = appctx.built_knowledge_base()
    try:
        model = create_backend(appctx.settings, backend, adapter)
    except BackendError as exc:
        fail(str(exc))
    pipeline = AnswerPipeline(appctx.settings, kb, model)
    brand = pipeline.brand
    for warning in brand.warnings:
        err_console.print(f"[yellow]brand profile:[/] {escape(warning)}")
    try:
        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("social messages", total=len(rows))
            pipeline.warm_up()
            outcomes = run_social(pipeline, rows, default_options(appctx.settings),
                                  lambda done, total, text: bar.update(task, completed=done))
    except BackendError as exc:
        fail(str(exc))
    summary = summarize(outcomes)
    figures: dict[str, object] = {"model": model.model_name, "adapter": model.adapter_name, "brand": brand.to_json(),
                                  "social": summary}
    if classifier:
        report = classifier_heldout(pipeline)
        products = [r["text"] for r in _load_routes(ROUTE_SET) if r["route"] == "grounded"]
        flagged = product_questions_flagged(pipeline, products)
        figures["classifier_heldout"] = {"n": report.n, "intent_accuracy": report.accuracy,
                                         "action_accuracy": report.action_accuracy, "per_intent": report.per_intent,
                                         "mistakes": report.mistakes}
        figures["route_set_products"] = {"n": len(products), "handed_off_or_declined": len(flagged), "flagged": flagged}
    if emanual:
        figures["emanual_tv"] = _emanual_flagged(appctx, model)
    if as_json:
        print(json.dumps(figures))
        return
    console.print(f"[dim]model {escape(model.model_name)}, adapter {escape(str(model.adapter_name or 'none'))}; "
                  f"brand profile {escape(brand.describe())}[/]")
    console.print(_social_table(summary))
    targets = Table(title="against the targets", show_header=True)
    for name in ("measure", "value", "target"):
        targets.add_column(name, justify="left" if name == "measure" else "right")
    targets.add_row("expected hand-offs handed off", _rate(summary["handoffs_handed_off"]), ">= 0.95")
    targets.add_row("declines declined", _rate(summary["declines_declined"]), ">= 0.90")
    targets.add_row("declines handed off", _rate(summary["declines_handed_off"]), "0")
    targets.add_row("other replies in the brand voice, passing the voice check", _rate(summary["replies_passing"]),
                    ">= 0.90")
    targets.add_row(f"model drafts passing the voice check (n={summary['drafts']})", _rate(summary["drafts_passing"]),
                    "")
    targets.add_row("'are you a bot?' answered as automated", summary["identity_automated"], "6/6")
    targets.add_row("personal-name sign-offs shown (in drafts)",
                    f"{summary['personal_names_final']} ({summary['personal_names_draft']})", "0")
    console.print(targets)
    if classifier:
        held = figures["classifier_heldout"]
        console.print(f"policy classifier, held-out half of eval/social_set.jsonl (n={held['n']}): intent "  # type: ignore[index]
                      f"{held['intent_accuracy']:.3f}, action {held['action_accuracy']:.3f}")  # type: ignore[index]
        products_fig = figures["route_set_products"]
        console.print(f"product questions of the route set handed off or declined by the policy: "
                      f"{products_fig['handed_off_or_declined']}/{products_fig['n']}")  # type: ignore[index]
        for item in products_fig["flagged"]:  # type: ignore[index]
            console.print(f"  [yellow]{item['action']}[/] {escape(item['text'])} [dim]{escape(item['reason'])}[/]")
    if emanual:
        tv = figures["emanual_tv"]
        console.print(f"E-Manual TV questions handed off or declined by the policy: {tv['handed_off_or_declined']}/"  # type: ignore[index]
                      f"{tv['n']}")  # type: ignore[index]
    if show:
        for o in summary["outcomes"]:
            mark = "[green]ok[/]" if o["ok"] else "[red]MISS[/]"
            console.print(f"{mark} [bold]{o['intent']}[/] {escape(o['message'])} → [cyan]{o['kind']}[/] "
                          f"{escape(o['answer'])}")
            if o["draft"] is not None and o["draft"] != o["answer"]:
                console.print(f"     [dim]draft: {escape(o['draft'])}[/]")


def _emanual_flagged(appctx: AppContext, model) -> dict[str, object]:
    """The E-Manual TV questions on the manual's own index (no brand profile: neutral)."""
    from supportdesk.answers import AnswerPipeline
    from supportdesk.evaluation.abstention import build_manual_kb
    from supportdesk.evaluation.social import product_questions_flagged

    if not EMANUAL.exists():
        fail(f"E-Manual dataset not found at {EMANUAL}")
    questions = [json.loads(line)["question"] for line in (EMANUAL / "questions_tv.jsonl").read_text().splitlines()
                 if line.strip()]
    with console.status("indexing the E-Manual (TV)..."):
        kb = build_manual_kb(appctx.settings, EMANUAL, set())
    pipeline = AnswerPipeline(kb.settings, kb, model)
    flagged = product_questions_flagged(pipeline, questions)
    return {"n": len(questions), "handed_off_or_declined": len(flagged), "flagged": flagged,
            "brand": pipeline.brand.describe()}
