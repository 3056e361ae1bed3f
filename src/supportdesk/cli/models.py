"""``supportdesk models``: what each backend offers, and a streamed chat with timings."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from supportdesk.cli.context import AppContext, console, err_console, fail
from supportdesk.cli.help import App

app = App(help="List models and chat with the answering model.", no_args_is_help=True)


@app.command("list")
def list_models(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False,
) -> None:
    """Models of each backend, and the adapters available to the embedded one."""
    from supportdesk.models import BackendError, create_backend, list_adapters, read_active

    settings = ctx.obj.settings
    rows: list[dict[str, object]] = []
    for kind in ("embedded", "ollama", "openai"):
        try:
            backend = create_backend(settings, kind, adapter="none")
            for model in backend.list_models():
                rows.append({"backend": kind, "name": model.name, "detail": model.detail, "available": model.available})
        except BackendError as exc:
            rows.append({"backend": kind, "name": "-", "detail": str(exc), "available": False})
    active = read_active(settings.data_dir)
    for adapter in list_adapters(settings.adapters_dir):
        detail = adapter.manifest.get("description") or adapter.manifest.get("base_model", "")
        rows.append({"backend": "adapter", "name": adapter.name + (" (active)" if adapter.name == active else ""),
                     "detail": str(detail), "available": True})
    if as_json:
        print(json.dumps(rows))
        return
    table = Table(title="models")
    for col in ("backend", "name", "detail"):
        table.add_column(col, overflow="fold")
    for row in rows:
        style = "" if row["available"] else "dim"
        table.add_row(str(row["backend"]), escape(str(row["name"])), escape(str(row["detail"])), style=style)
    console.print(table)


def print_stats(stats: dict[str, object]) -> None:
    parts = [f"{stats['backend']}:{stats['model']}"]
    if stats.get("adapter"):
        parts.append(f"adapter {stats['adapter']}")
    if stats.get("ttft_ms") is not None:
        parts.append(f"first token {stats['ttft_ms']:.0f} ms")
    if stats.get("tokens_per_s"):
        parts.append(f"{stats['tokens']} tokens at {stats['tokens_per_s']:.0f} tok/s")
    if stats.get("prompt_tokens") is not None:
        cached = stats.get("prompt_cached_tokens")
        parts.append(f"prompt {stats['prompt_tokens']} tokens" + (f" ({cached} cached)" if cached else ""))
    if stats.get("load_ms"):
        parts.append(f"load {stats['load_ms']:.0f} ms")
    parts.append(f"total {stats['total_ms']:.0f} ms, {stats['finish_reason']}")
    err_console.print("[dim]" + escape(" · ".join(parts)) + "[/]")


@app.command("chat")
def chat(
    ctx: typer.Context,
    message: Annotated[str, typer.Argument(help="What the customer says.")],
    backend: Annotated[str | None, typer.Option("--backend", help="embedded | ollama | openai (default: settings).")] = None,
    adapter: Annotated[
        str | None, typer.Option("--adapter", help="Adapter name under adapters/, or 'none' for the bare base.")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1, help="Most tokens to generate.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature", min=0.0, help="0 = greedy.")] = None,
    system: Annotated[str | None, typer.Option("--system", help="System prompt (default: settings).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: reply and stats.")] = False,
) -> None:
    """Stream one reply from the answering model and print its timings."""
    from supportdesk.models import BackendError, ChatMessage, create_backend, default_options
    from supportdesk.sanitize import strip_control

    appctx: AppContext = ctx.obj
    settings = appctx.settings
    if backend is not None and backend not in ("embedded", "ollama", "openai"):
        fail(f"--backend must be embedded, ollama or openai, not '{backend}'")
    if not system and not settings.model.system_prompt:
        from supportdesk.answers.prompts import voice_system
        from supportdesk.brand import load_brand

        system = voice_system(load_brand(settings))
    messages = [ChatMessage("system", system or settings.model.system_prompt or ""), ChatMessage("user", message)]
    try:
        model = create_backend(settings, backend, adapter)
        generation = model.generate(messages, default_options(settings, max_tokens=max_tokens, temperature=temperature))
        if as_json:
            text = generation.run()
        else:
            text = generation.run(lambda piece: (sys.stdout.write(strip_control(piece)), sys.stdout.flush()))
            print()
    except KeyboardInterrupt:
        fail("cancelled", code=130)
    except BackendError as exc:
        fail(str(exc))
    if as_json:
        print(json.dumps({"reply": text, "stats": generation.stats.as_dict()}))
    else:
        print_stats(generation.stats.as_dict())
