"""``supportdesk adapter``: prepare → build → eval → activate / push, for trainers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.help import App

app = App(help="Build, evaluate and deploy the brand-voice LoRA adapter.", no_args_is_help=True)


@app.callback()
def _through_server(ctx: typer.Context) -> None:
    """With --server, only list, activate go through the team server; the rest work on local files."""
    if ctx.obj.server and ctx.invoked_subcommand not in ('list', 'activate'):
        ctx.obj.local_only(f"adapter {ctx.invoked_subcommand}")


def say(message: str) -> None:
    """A line from the training code (never markup: it quotes file names)."""
    err_console.print(escape(message), soft_wrap=True)


def plain(name: str, what: str) -> str:
    """A name that becomes a folder: refused, with a message, unless it is a plain name."""
    from supportdesk.sanitize import check_plain_name

    try:
        return check_plain_name(name, what)
    except ValueError as exc:
        fail(str(exc))


def dataset_dir(appctx: AppContext, name: str) -> Path:
    from supportdesk.training.bootstrap import dataset_dir as folder

    try:
        return folder(appctx.settings, name)
    except ValueError as exc:
        fail(str(exc))


@app.command("prepare")
def prepare_cmd(
    ctx: typer.Context,
    inputs: Annotated[list[Path], typer.Argument(help="Transcript files: .jsonl (chat, Twitter shape, history export) or .csv.")],
    name: Annotated[str, typer.Option("--name", help="Dataset name (under the data dir's datasets/).")] = "default",
    out: Annotated[Path | None, typer.Option("--out", help="Write the dataset here instead.")] = None,
    company: Annotated[str | None, typer.Option(
        "--company", help="The brand these transcripts speak for (default: the brand profile's company, when the "
        "input holds it). Twitter shape: only its records are kept; needed when the input holds several brands: "
        "without it (or --all-companies) prepare refuses and lists the brands it found. The brand profile's sign-off "
        "replaces personal sign-offs ('— Maya', '^AB') only in its own company's transcripts.")] = None,
    all_companies: Annotated[bool, typer.Option(
        "--all-companies", help="Twitter shape: mix every brand in one dataset, on purpose.")] = False,
    sign_off: Annotated[str | None, typer.Option(
        "--sign-off", help="House sign-off that replaces personal ones (default: the brand profile's; '' removes them)."
    )] = None,
    eval_fraction: Annotated[float, typer.Option("--eval-fraction", min=0.05, max=0.5)] = 0.15,
    order_pattern: Annotated[str | None, typer.Option(
        "--order-pattern", help="Regex for order numbers to scrub (default: the brand profile's).")] = None,
) -> None:
    """Validate, scrub PII, deduplicate and split transcripts into train/eval."""
    import re

    from supportdesk.brand import load_brand
    from supportdesk.training.prepare import MixedBrands, brand_list, prepare, write_dataset

    brand = load_brand(ctx.obj.settings)
    for warning in brand.warnings:
        err_console.print(f"[yellow]brand profile:[/] {escape(warning)}")
    target = out or dataset_dir(ctx.obj, name)
    try:
        re.compile(order_pattern or "")
    except re.error as exc:
        fail(f"--order-pattern is not a valid regular expression: {exc}")
    if company and all_companies:
        fail("give --company NAME (one brand) or --all-companies (every brand), not both")

    def run(company: str | None, ours: bool):
        return prepare(list(inputs), eval_fraction=eval_fraction, order_pattern=order_pattern or brand.order_pattern,
                       company=company, all_companies=all_companies, keep_numbers=brand.keep_numbers() if ours else (),
                       sign_off=(brand.sign_off if ours else "") if sign_off is None else sign_off,
                       brand_words=brand.name_words)

    ours = company is None or company == brand.company  # the brand profile's own transcripts
    try:
        dataset = run(company, ours)
    except MixedBrands as exc:
        if company is not None or not brand.company or brand.company not in exc.brands:
            fail(str(exc))
        company = brand.company  # the default: the brand profile's company, which the input holds
        dataset = run(company, True)
    if company and dataset.brands and company not in dataset.brands:
        fail(f"--company {company}: no record of that brand in the input; it holds: {brand_list(dataset.brands)}")
    if sign_off is None:
        sign_off = brand.sign_off if ours else ""
    err_console.print(f"brand: {escape(company or brand.company or 'not named')}"
                      + (f" ({escape(brand.describe())})" if ours else " (--company; not the brand profile's)"))
    for problem in dataset.problems[:50]:
        err_console.print(f"[yellow]skipped[/] {escape(str(problem))}")
    if len(dataset.problems) > 50:
        err_console.print(f"[yellow]… and {len(dataset.problems) - 50} more problems (see stats.json)[/]")
    if not dataset.train:
        fail("no usable conversations: nothing written")
    try:
        stats = write_dataset(dataset, target)
    except OSError as exc:
        fail(f"cannot write the dataset to {target}: {exc.strerror or exc}")
    table = Table(title=f"dataset {target}", show_header=False)
    for key in ("read", "bad_records", "duplicates", "train", "eval", "agent_turns"):
        table.add_row(key, str(stats[key]))
    table.add_row("personal sign-offs replaced", f"{stats['sign_offs_replaced']}"
                  + (f" (by '{sign_off}')" if sign_off else " (removed: no house sign-off)"))
    table.add_row("PII replaced", ", ".join(f"{k} {v}" for k, v in sorted(stats["pii_replaced"].items())) or "none")
    if stats["brands"]:
        table.add_row("brands mixed" if len(stats["brands"]) > 1 else "brand", brand_list(stats["brands"]))
    console.print(table)


def run_build(settings, name: str, dataset: Path, **options):
    """``training.build.build_with_settings`` under a progress bar."""
    from supportdesk.training.build import build_with_settings

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=err_console) as bar:
        task = bar.add_task("loading base", total=None, loss="-")
        on_step = options.pop("on_step", lambda info: None)

        def step(info) -> None:
            bar.update(task, description="training", completed=info.step, total=info.total, loss=f"{info.loss:.3f}")
            on_step(info)

        return build_with_settings(settings, name, dataset, on_step=step, **options)


@contextlib.contextmanager
def training_errors() -> Iterator[None]:
    """What a build or an evaluation refuses (a name taken, no dataset, an unknown adapter): one line."""
    from supportdesk.models.base import ModelMissing
    from supportdesk.training.bootstrap import NothingToBuild
    from supportdesk.training.evaluate import EvalSetMissing

    try:
        yield
    except EvalSetMissing as exc:
        fail(f"{exc}: pass --dataset DIR (a folder made by 'adapter prepare')")
    except (NothingToBuild, ModelMissing, FileExistsError, FileNotFoundError, ValueError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted: nothing was written, the previous adapter (if any) is untouched", code=130)


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter name (folder under adapters/).")],
    dataset: Annotated[Path | None, typer.Option("--dataset", help="Prepared dataset folder.")] = None,
    dataset_name: Annotated[str, typer.Option("--dataset-name", help="Dataset prepared with --name.")] = "default",
    replace: Annotated[bool, typer.Option("--replace", help="Replace an existing adapter of that name.")] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1)] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", min=0.1)] = None,
    rank: Annotated[int | None, typer.Option("--rank", min=1, max=256)] = None,
) -> None:
    """Train a LoRA adapter (Unsloth on a GPU, PEFT on the CPU) and write it in PEFT and GGUF form."""
    plain(name, "adapter name")
    with training_errors():
        result = run_build(ctx.obj.settings, name, dataset or dataset_dir(ctx.obj, dataset_name), replace=replace,
                           max_steps=max_steps, epochs=epochs, rank=rank, say=say)
    console.print(f"[bold green]adapter ready[/] {result.path} ({result.trainer}, {result.steps} steps, "
                  f"final loss {result.final_loss:.3f}, {result.seconds:.0f} s). Next: supportdesk adapter eval {name}")


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter to evaluate.")],
    dataset: Annotated[Path | None, typer.Option("--dataset", help="Dataset folder (default: the one it was built on).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Held-out perplexity base vs adapter, voice markers, side-by-side replies; saved in the manifest."""
    from supportdesk.training.evaluate import evaluate_with_settings

    with training_errors():
        evaluation = evaluate_with_settings(ctx.obj.settings, name, dataset, working=err_console.status)
    if as_json:
        print(json.dumps({**evaluation.as_metrics(), "samples": evaluation.samples}))
        return
    table = Table(title=f"adapter {name}: held-out evaluation ({evaluation.eval_conversations} conversations)")
    table.add_column("measure")
    table.add_column("base", justify="right")
    table.add_column("adapter", justify="right")
    table.add_row("perplexity of agent replies", f"{evaluation.base_perplexity:.2f}", f"{evaluation.adapter_perplexity:.2f}")
    for key in ("greeting_rate", "sign_off_rate", "personal_sign_off_rate", "banned_rate"):
        table.add_row(key.replace("_", " "), f"{evaluation.markers['base'][key]:.2f}", f"{evaluation.markers['adapter'][key]:.2f}")
    console.print(table)
    console.print(f"perplexity drop: {evaluation.improvement:.1%}")
    for sample in evaluation.samples:
        console.print(f"[bold]> {escape(sample['prompt'])}[/]\n  [dim]base:[/] {escape(sample['base'])}\n  "
                      f"[cyan]adapter:[/] {escape(sample['adapter'])}")


@app.command("list")
def list_cmd(ctx: typer.Context) -> None:
    """Adapters in adapters/, with their metrics; the active one is marked."""
    from supportdesk.models import list_adapters, read_active

    appctx: AppContext = ctx.obj
    if appctx.server:
        names, status = appctx.through_server(lambda remote: (remote.adapters(), remote.fetch_status()))
        table = Table(title=f"adapters on {appctx.remote.shown_url} ({status.backend})")
        table.add_column("name")
        for name in names:
            table.add_row(("● " if name == status.adapter else "  ") + name)
        console.print(table)
        return
    settings = appctx.settings
    active = read_active(settings.data_dir)
    table = Table(title=f"adapters in {settings.adapters_dir}")
    for col in ("name", "trainer", "created", "perplexity base → adapter", "conversations"):
        table.add_column(col)
    for adapter in list_adapters(settings.adapters_dir):
        m = adapter.manifest
        metrics = m.get("metrics") or {}
        ppl = (f"{metrics['base_perplexity']:.2f} → {metrics['adapter_perplexity']:.2f}"
               if "adapter_perplexity" in metrics else "not evaluated")
        table.add_row(("● " if adapter.name == active else "  ") + adapter.name, str(m.get("trainer", "?")),
                      str(m.get("created", "?")), ppl, str(m.get("conversations", "?")))
    console.print(table)


@app.command("activate")
def activate_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter to serve, or 'none' for the bare base.")],
    force: Annotated[bool, typer.Option("--force", help="Activate even if it is worse.")] = False,
) -> None:
    """Make the embedded backend serve this adapter (refused if worse than the base or the active one)."""
    from supportdesk.models import find_adapter, read_active
    from supportdesk.models.adapters import StateWriteError, verify_adapter, write_active
    from supportdesk.models.base import ModelMissing
    from supportdesk.models.embedded import default_gguf_path
    from supportdesk.training.evaluate import ActivationRefused, check_activation

    appctx: AppContext = ctx.obj
    if appctx.server:  # the server's trainer switch: loaded for everyone, the previous one serves until then
        status = appctx.through_server(lambda remote: remote.switch_model(adapter=name, force=force))
        console.print(f"[bold green]server now answers with adapter:[/] {status.adapter or 'none'}")
        return
    settings = appctx.settings
    if name == "none":
        try:
            write_active(settings.data_dir, None)
        except StateWriteError as exc:
            fail(str(exc))
        console.print("serving the bare base model")
        return
    try:
        candidate = find_adapter(settings.adapters_dir, name)
        verify_adapter(candidate, settings.model.gguf_path or default_gguf_path())  # --force never skips this
        active_name = read_active(settings.data_dir)
        active = None
        if active_name and active_name != name:
            try:
                active = find_adapter(settings.adapters_dir, active_name)
            except ModelMissing:
                active = None  # the active one is gone: nothing to compare against
    except ModelMissing as exc:
        fail(str(exc))
    if not force:
        try:
            check_activation(candidate, active)
        except ActivationRefused as exc:
            fail(f"{exc} (use --force to activate anyway)")
    try:
        write_active(settings.data_dir, name)
    except StateWriteError as exc:
        fail(str(exc))
    console.print(f"[bold green]active adapter:[/] {name}")


def modelfile_text(base_gguf: Path, adapter_gguf: Path, system_prompt: str) -> str:
    escaped = system_prompt.replace('"""', '\\"\\"\\"')
    return (f"FROM {base_gguf}\nADAPTER {adapter_gguf}\n"
            'TEMPLATE """{{- if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
            "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
            '<|im_start|>assistant\n"""\n'
            'PARAMETER stop "<|im_end|>"\n'
            f'SYSTEM """{escaped}"""\n')


def _push_openai(settings, adapter, base: Path) -> None:
    """Check the OpenAI-compatible server serves the adapter under its name; then activate it."""
    from supportdesk.models.adapters import StateWriteError, write_active
    from supportdesk.models.base import BackendError
    from supportdesk.models.openai_backend import OpenAIBackend, llama_cpp_python_config, serve_lines

    config_path = adapter.path / "llama-server.json"
    config = llama_cpp_python_config(base, {settings.model.openai_model: None, adapter.name: adapter.gguf},
                                     n_ctx=settings.model.context_tokens, threads=settings.model.threads)
    config_path.write_text(json.dumps(config, indent=1))
    key = settings.model.openai_api_key.get_secret_value() if settings.model.openai_api_key else None
    backend = OpenAIBackend(settings.model.openai_base_url, settings.model.openai_model, key,
                            connect_timeout=settings.model.ollama_connect_timeout)
    lines = serve_lines(adapter.name, str(adapter.path), str(adapter.gguf), str(base))
    try:
        served = [info.name for info in backend.list_models()]
    except BackendError as exc:
        fail(f"{exc}\nTo serve '{adapter.name}', start the server with one of:\n  " + "\n  ".join(lines)
             + f"\n(wrote {config_path} for the llama.cpp server)")
    if adapter.name not in served:
        fail(f"the server at {settings.model.openai_base_url} does not serve '{adapter.name}' (it serves: "
             f"{', '.join(served) or 'nothing'}). Restart it with one of:\n  " + "\n  ".join(lines)
             + f"\n(wrote {config_path} for the llama.cpp server)")
    try:
        write_active(settings.data_dir, adapter.name)
    except StateWriteError as exc:
        fail(str(exc))
    console.print(f"[bold green]served[/] '{adapter.name}' by {settings.model.openai_base_url}; active for supportdesk. "
                  "Use it with SUPPORTDESK_MODEL__BACKEND=openai")


@app.command("push")
def push_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Adapter to register with a model server.")],
    to: Annotated[str, typer.Option("--to", help="ollama (registers it) or openai (checks an OpenAI-compatible "
                                                 "server serves it, else prints the serve line).")] = "ollama",
    model: Annotated[str | None, typer.Option("--model", help="Ollama model name (default: supportdesk-NAME).")] = None,
) -> None:
    """Register base + adapter with Ollama (and write adapters/NAME/Modelfile), or with --to openai check that
    vLLM / llama.cpp's server serves it by name (writes adapters/NAME/llama-server.json) and activate it."""
    import httpx
    import ollama

    from supportdesk.models import find_adapter
    from supportdesk.models.base import ModelMissing
    from supportdesk.models.embedded import default_gguf_path

    if to not in ("ollama", "openai"):
        fail(f"--to {to}: use 'ollama' or 'openai'")
    settings = ctx.obj.settings
    try:
        adapter = find_adapter(settings.adapters_dir, name)
    except ModelMissing as exc:
        fail(str(exc))
    base = settings.model.gguf_path or default_gguf_path()
    if to == "openai":
        _push_openai(settings, adapter, base)
        return
    system_prompt = adapter.manifest.get("system_prompt", "")
    modelfile = adapter.path / "Modelfile"
    modelfile.write_text(modelfile_text(base, adapter.gguf, system_prompt))
    console.print(f"wrote {modelfile} (for: ollama create {model or 'supportdesk-' + name} -f {modelfile})")
    target = model or f"supportdesk-{name}"
    client = ollama.Client(host=settings.model.ollama_host, timeout=httpx.Timeout(connect=1.0, read=600.0, write=600.0, pool=5.0))
    try:
        base_digest = client.create_blob(base)
        adapter_digest = client.create_blob(adapter.gguf)
        client.create(model=target, files={base.name: base_digest}, adapters={adapter.gguf.name: adapter_digest},
                      system=system_prompt, parameters={"stop": ["<|im_end|>"]}, stream=False)
    except (ConnectionError, httpx.ConnectError, httpx.ConnectTimeout):
        fail(f"Ollama is not answering at {settings.model.ollama_host}: start it with 'ollama serve', or run "
             f"'ollama create {target} -f {modelfile}' where it runs")
    except ollama.ResponseError as exc:
        fail(f"Ollama refused the model: {exc.error}")
    console.print(f"[bold green]registered[/] {target} on {settings.model.ollama_host}; "
                  f"use it with SUPPORTDESK_MODEL__BACKEND=ollama SUPPORTDESK_MODEL__OLLAMA_MODEL={target}")


@app.command("bootstrap")
def bootstrap_sample(
    ctx: typer.Context,
    background: Annotated[bool, typer.Option("--background", help="Report to the status file the app shows; "
                                             "SIGTERM pauses at a checkpoint; one builder per data dir, "
                                             "ending with the app that started it.")] = False,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="Training threads (default: all cores).")] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, help="Stop training after this many steps "
                                                  "(a quick smoke build; the default trains to the end).")] = None,
) -> None:
    """Build, evaluate and activate the brand's adapter if there is none (resumes a paused build).

    The adapter's name and its transcripts come from the brand profile (``adapter``,
    ``transcripts``; the sample KB's profile names the sample's). The app starts this in the
    background on its first run; run it here to build in the foreground instead. The adapter is
    activated only if its held-out perplexity is at least 25 % below the base model's.
    """
    from supportdesk.training.bootstrap import bootstrap

    with training_errors():
        bootstrap(ctx.obj.settings, background=background, threads=threads, max_steps=max_steps, say=say,
                  build=run_build)
