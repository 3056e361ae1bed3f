"""``supportdesk eval-answers``: are the answers' facts right, and is their text clean?

Asks every question through the same pipeline as ``supportdesk ask`` (whatever answer path,
backend and adapter are in force), then scores:

* ``--set facts`` (default): ``eval/fact_set.jsonl`` on the configured KB (the sample KB):
  right / wrong / handed off / missing per question (``evaluation.facts``), and whether the
  fact was in the retrieved top-5 chunks;
* ``--set emanual_tv``: the E-Manual TV questions (``../shared/datasets/emanual``) on a KB
  built from the manual the way ``eval-public`` builds it; token F1 against the reference
  answers, hit@5 of the gold section.

Both: the text measures of ``evaluation.answer_quality``, and the baseline that quotes the
first four sentences of the answer's own top source (its ``[1]``; the top search hit when it
showed none). ``--out FILE`` writes every question, answer and verdict as JSONL, one line as
each answer comes; ``--rescore FILE`` asks nothing and scores such a file again (after the set
or a measure changed), so figures can be re-derived from the answers a person read.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.evaluate import EMANUAL, EVAL_DIR

FACT_SET = EVAL_DIR / "fact_set.jsonl"
SETS = ("facts", "emanual_tv")
HALF_CHOICES = ("a", "b", "all")
TOP = 5


def pick(rows: list, n: int | None) -> list:
    """``n`` rows spread evenly over the set (all of them without ``n``), in set order."""
    if n is None or n >= len(rows):
        return list(rows)
    return [rows[i * len(rows) // n] for i in range(n)]


def _load_facts(path: Path):
    from supportdesk.evaluation.facts import load_fact_set

    try:
        return load_fact_set(path)
    except (OSError, ValueError) as exc:
        fail(str(exc))


def _emanual_questions(folder: Path) -> tuple[Any, list[dict[str, Any]]]:
    """The TV manual as a dataset, and its questions that name a gold section, with reference answers."""
    from supportdesk.evaluation import datasets

    try:
        dataset = datasets.emanual(folder, "tv")
        raw = {row["qid"]: row for row in datasets._jsonl(folder / "questions_tv.jsonl")}
    except (OSError, ValueError, KeyError) as exc:
        fail(f"E-Manual TV set at {folder}: {exc}")
    rows = []
    for position, question in enumerate(dataset.questions):
        reference = raw.get(question.qid, {}).get("answer")
        if isinstance(reference, str) and reference.strip():
            rows.append({"id": question.qid, "half": "ab"[position % 2], "question": question.text,
                         "reference": reference, "gold": question.gold})
    return dataset, rows


class Asker:
    """The ask pipeline plus what each record needs: search, baseline, measures."""

    def __init__(self, pipeline, options) -> None:
        from supportdesk.evaluation.answer_quality import prompt_instructions

        self.pipeline = pipeline
        self.options = options
        self.instructions = prompt_instructions()

    def ask(self, question: str):
        from supportdesk.answers import EmptyQuestion
        from supportdesk.models import BackendError

        try:
            return self.pipeline.ask(question, options=self.options).run()
        except (BackendError, EmptyQuestion) as exc:
            fail(f"asking {question!r}: {exc}")

    def top_source(self, result, question: str) -> str:
        if result.citations:
            return result.citations[0].text
        hits = self.pipeline.kb.search(question, k=1).hits
        return hits[0].chunk.text if hits else ""


def _record(asker: Asker, row: dict[str, Any], reference: str) -> dict[str, Any]:
    """Ask one question; what it gives (answer, kind, sources, timings) and the baseline answer."""
    from supportdesk.evaluation.answer_quality import quote_first_sentences

    result = asker.ask(row["question"])
    return {
        "id": row["id"], "half": row["half"], "question": row["question"], "reference": reference,
        "answer": result.answer, "kind": result.kind, "route": result.route, "fallback": result.fallback,
        "baseline": quote_first_sentences(asker.top_source(result, row["question"])),
        "ttft_ms": result.timings.get("ttft_ms"), "total_ms": result.timings.get("total_ms"),
        "extraction": result.extraction, "answerability": result.answerability,
        "citations": [{"n": c.number, "source": c.source, "heading": c.heading, "cited": c.cited, "text": c.text}
                      for c in result.citations],
    }


def _score(record: dict[str, Any], item: Any, instructions: list[str]) -> dict[str, Any]:
    """Verdicts and measures from what a record holds, so a saved run can be scored again."""
    from supportdesk.evaluation.answer_quality import measure
    from supportdesk.evaluation.facts import score_answer
    from supportdesk.evaluation.scoring import token_f1

    reference = record["reference"]
    answered = record["kind"] not in ("handoff", "clarify")
    sources = [c.get("text", "") for c in record.get("citations", [])]
    record["quality"] = measure(record["answer"], sources, reference, instructions) if answered else None
    record["f1"] = token_f1(record["answer"], reference)
    record["baseline_f1"] = token_f1(record["baseline"], reference)
    if item is not None:
        verdict = score_answer(item, record["answer"], record["kind"])
        record.update({"type": item.type, "source": item.source, "fact": item.fact.pattern,
                       "verdict": verdict.verdict, "reason": verdict.reason, "matched": verdict.matched,
                       "baseline_verdict": score_answer(item, record["baseline"]).verdict})
    return record


def _figures(records: list[dict[str, Any]], facts: bool) -> dict[str, Any]:
    from supportdesk.evaluation.answer_quality import summarise
    from supportdesk.evaluation.facts import fact_figures

    answered = [r["quality"] for r in records if r["quality"] is not None]
    ttfts = [r["ttft_ms"] for r in records if r["ttft_ms"] is not None]
    figures: dict[str, Any] = {
        "n": len(records),
        "routes": dict(Counter(r["kind"] for r in records)),
        "hit_at_5": sum(r["in_top5"] for r in records) / len(records) if records else None,
        "token_f1": statistics.mean(r["f1"] for r in records) if records else None,
        "baseline_token_f1": statistics.mean(r["baseline_f1"] for r in records) if records else None,
        "quality": summarise(answered),
        "ttft_ms_p50": statistics.median(ttfts) if ttfts else None,
    }
    if facts:
        scored = fact_figures(records)
        figures["facts"] = scored.to_json() if scored else None
        figures["baseline_right_rate"] = sum(r["baseline_verdict"] == "right" for r in records) / len(records)
        figures["baseline_wrong_rate"] = sum(r["baseline_verdict"] == "wrong" for r in records) / len(records)
    return figures


def _json_record(record: dict[str, Any]) -> dict[str, Any]:
    data = {k: v for k, v in record.items() if not k.startswith("_")}
    if data.get("quality") is not None:
        data["quality"] = data["quality"].to_json()
    return data


def _rate(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(title: str, halves: dict[str, dict[str, Any]], facts: bool) -> Table:
    table = Table(title=title)
    table.add_column("measure")
    for name in halves:
        table.add_column(f"half {name}" if name != "all" else "all", justify="right")

    def row(label: str, get) -> None:
        table.add_row(label, *[get(f) for f in halves.values()])

    row("questions", lambda f: str(f["n"]))
    if facts:
        row("right", lambda f: _rate(f["facts"]["right_rate"]))
        row("wrong facts stated (wrong / questions)", lambda f: _rate(f["facts"]["wrong_facts_rate"]))
        row("handed off (hand-off or clarify)", lambda f: _rate(f["facts"]["handoff_rate"]))
        row("missing (no fact, no wrong value)", lambda f: _rate(f["facts"]["missing_rate"]))
        row("fact in retrieved top-5 (hit@5)", lambda f: _rate(f["facts"]["fact_in_top5_rate"]))
        row("right when the fact is in the top-5",
            lambda f: f"{_rate(f['facts']['right_when_fact_in_top5'])} (n={f['facts']['fact_in_top5_n']})")
        row("baseline (first 4 sentences of [1]): right / wrong",
            lambda f: f"{_rate(f['baseline_right_rate'])} / {_rate(f['baseline_wrong_rate'])}")
    else:
        row("gold section in top-5 (hit@5)", lambda f: _rate(f["hit_at_5"]))
    row("token F1 vs reference (every question)", lambda f: _rate(f["token_f1"]))
    row("token F1 baseline: first 4 sentences of [1]", lambda f: _rate(f["baseline_token_f1"]))
    row("answers measured (not handed off)", lambda f: str(f["quality"]["answers"]))
    row("repeated sentences (share of sentences)", lambda f: _rate(f["quality"]["repeated_sentence_rate"]))
    row("fragments (share of sentences)", lambda f: _rate(f["quality"]["fragment_rate"]))
    row("placeholders (count)", lambda f: str(f["quality"]["placeholders"]))
    row("prompt echo (answers)", lambda f: str(f["quality"]["prompt_echo_answers"]))
    row("meta-talk (answers)", lambda f: str(f["quality"]["meta_talk_answers"]))
    row("median words (factual part)", lambda f: _rate(f["quality"]["median_words"], 0))
    row("TTFT p50 (ms)", lambda f: _rate(f["ttft_ms_p50"], 0))
    row("routes", lambda f: ", ".join(f"{k} {v}" for k, v in sorted(f["routes"].items())))
    return table


def _rescore(path: Path, items: list, facts: bool, half: str, n: int | None) -> list[dict[str, Any]]:
    """The records of an earlier ``--out`` file, scored again with today's set and measures."""
    from supportdesk.evaluation.answer_quality import prompt_instructions
    from supportdesk.jsonl import read_jsonl

    try:
        rows = read_jsonl(path)
    except (OSError, ValueError) as exc:
        fail(f"cannot read {path}: {exc}")
    by_id = {item.id: item for item in items}
    needed = ("id", "half", "question", "reference", "answer", "kind", "baseline", "in_top5")
    records = []
    for number, row in rows:
        missing = [key for key in needed if key not in row]
        if missing:
            fail(f"{path}:{number}: field '{missing[0]}' is missing (not a file written by eval-answers --out)")
        if facts and row["id"] not in by_id:
            fail(f"{path}:{number}: id '{row['id']}' is not in the fact set (an emanual_tv file? pass --set emanual_tv)")
        if half in ("all", row["half"]):
            records.append(row)
    instructions = prompt_instructions()
    return [_score(record, by_id.get(record["id"]) if facts else None, instructions) for record in pick(records, n)]


def eval_answers(
    ctx: typer.Context,
    which: Annotated[str, typer.Option("--set", help=f"Question set: {', '.join(SETS)}.")] = "facts",
    n: Annotated[int | None, typer.Option("-n", min=1, help="Ask only N questions, spread over the set.")] = None,
    half: Annotated[str, typer.Option("--half", help="Half of the set: a, b or all.")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write every question, answer and verdict as JSONL to this file.")] = None,
    rescore: Annotated[Path | None, typer.Option(
        "--rescore", help="Ask nothing: score the answers of an earlier --out file again (after the set or the "
        "measures changed).")] = None,
    fact_set: Annotated[Path, typer.Option("--fact-set", help="The labelled fact set (JSONL).")] = FACT_SET,
    emanual: Annotated[Path, typer.Option("--emanual", help="E-Manual dataset folder.")] = EMANUAL,
    backend: Annotated[str | None, typer.Option("--backend", help="embedded | ollama | openai (default: settings).")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", help="Adapter name, or 'none'.")] = None,
) -> None:
    """Ask a labelled set through the answer pipeline: right / wrong facts, text quality, the quote baseline."""
    appctx: AppContext = ctx.obj
    if which not in SETS:
        fail(f"unknown set '{which}': choose from {', '.join(SETS)}")
    if half not in HALF_CHOICES:
        fail(f"unknown half '{half}': choose a, b or all")
    facts = which == "facts"
    items = _load_facts(fact_set) if facts else []
    if rescore is not None:
        records = _rescore(rescore, items, facts, half, n)
        title = f"eval-answers: {which}, answers of {escape(str(rescore))} scored again"
    handle = None
    if out is not None:
        try:
            handle = out.open("w", encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}")

    def write(record: dict[str, Any]) -> None:  # one line per answer as it comes: a long run can be read meanwhile
        if handle is not None:
            handle.write(json.dumps(_json_record(record), ensure_ascii=False) + "\n")
            handle.flush()

    if rescore is None:
        records, title = _ask_all(appctx, which, items, half, n, backend, adapter, emanual, write)
    else:
        for record in records:
            write(record)
    if handle is not None:
        handle.close()
    from supportdesk.evaluation.facts import by_half

    halves = {name: _figures(group, facts) for name, group in by_half(records).items()}
    if as_json:
        print(json.dumps({"set": which, "halves": halves}))
        return
    console.print(_table(title, halves, facts))
    if out is not None:
        console.print(f"[dim]every question, answer and verdict: {escape(str(out))}[/]")


def _ask_all(appctx: AppContext, which: str, items: list, half: str, n: int | None, backend: str | None,
             adapter: str | None, emanual: Path, write: Callable[[dict[str, Any]], None],
             ) -> tuple[list[dict[str, Any]], str]:
    """Ask every question of the set (or its half, or ``n`` of them) through the ask pipeline."""
    from supportdesk.cli.ask import build_pipeline
    from supportdesk.models import BackendError, default_options

    facts = which == "facts"
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="supportdesk-eval-answers-") as tmp, \
            Progress(console=err_console, transient=True) as bar:
        if facts:
            rows = pick([i for i in items if half in ("all", i.half)], n)
            task = bar.add_task("loading the model", total=None)
            pipeline = build_pipeline(appctx, backend, adapter)
            kb = pipeline.kb
            title = f"eval-answers: facts ({len(items)} questions; KB {escape(str(kb.settings.kb_dir))})"
        else:
            from supportdesk.answers import AnswerPipeline
            from supportdesk.evaluation.retrieval import build_dataset_kb
            from supportdesk.models import create_backend

            dataset, all_rows = _emanual_questions(emanual)
            rows = pick([r for r in all_rows if half in ("all", r["half"])], n)
            task = bar.add_task("emanual_tv: indexing the manual", total=None)
            try:
                kb = build_dataset_kb(dataset, Path(tmp))
                model = create_backend(appctx.settings, backend, adapter)
            except (RuntimeError, BackendError) as exc:
                fail(str(exc))
            pipeline = AnswerPipeline(kb.settings, kb, model)
            title = f"eval-answers: emanual_tv ({len(all_rows)} questions, {len(dataset.documents)} sections)"
        try:
            load = getattr(pipeline.backend, "load", None)
            if callable(load):
                load()
        except BackendError as exc:
            fail(str(exc))
        pipeline.router.warm_up()
        asker = Asker(pipeline, default_options(appctx.settings))
        depth = max(kb.settings.retrieval.candidates, 10)
        bar.update(task, total=len(rows), completed=0, description=f"{which}: asking")
        for done, row in enumerate(rows, start=1):
            if facts:
                from supportdesk.evaluation.facts import fact_in_texts

                record = _record(asker, {"id": row.id, "half": row.half, "question": row.question}, row.answer)
                top = kb.search(row.question, k=TOP).hits
                record["in_top5"] = record["fact_in_top5"] = fact_in_texts(row, [h.chunk.text for h in top])
            else:
                from supportdesk.evaluation.retrieval import rank_documents

                record = _record(asker, row, row["reference"])
                ranked = rank_documents(kb.search(row["question"], k=depth).hits, dataset.files)
                record["in_top5"] = any(doc in row["gold"] for doc in ranked[:TOP])
                record["gold"] = list(row["gold"])
            records.append(_score(record, row if facts else None, asker.instructions))
            write(record)
            bar.update(task, completed=done)
    return records, title
