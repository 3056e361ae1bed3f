"""The brand's adapter on a first run: prepare its transcripts, build, evaluate, activate if it passed.

``supportdesk adapter bootstrap`` runs it in the foreground. The app runs it in the background
(``training/background.py``) as its own process::

    python -m supportdesk.training.bootstrap --data-dir DIR [--kb DIR] --background --threads N

which reports to the status file the app shows, pauses at a checkpoint on SIGTERM, holds the data
dir's builder lock and ends with the app that started it (``BuilderGuard``). A paused build
resumes from its checkpoint on the next run.

Headless: nothing here imports Textual, typer or rich (the CLI brings its progress bar through
``build``); torch only once training starts.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from supportdesk.sanitize import check_plain_name

if TYPE_CHECKING:
    from supportdesk.settings import Settings
    from supportdesk.training.build import BuildResult, StepInfo

DEFAULT_ADAPTER = "brand-voice"
"""The first run's adapter when the brand profile names none."""
SAMPLE_EPOCHS_FP32 = 1.0
SAMPLE_GATE = 0.25
"""The sample adapter is activated only if its held-out perplexity is at least this much below the
base's (the full build reaches ~70 %; a build cut short by --max-steps usually does not)."""

Say = Callable[[str], None]
Build = Callable[..., "BuildResult"]


class NothingToBuild(ValueError):
    """The brand profile names no transcripts (or they are missing): the message says what to do."""


def dataset_dir(settings: Settings, name: str) -> Path:
    """A prepared dataset's folder under the data dir; ValueError unless ``name`` is a plain name."""
    return settings.data_dir / "datasets" / check_plain_name(name, "dataset name")


def bootstrap(settings: Settings, *, background: bool = False, threads: int | None = None,
              max_steps: int | None = None, say: Say = lambda message: None, build: Build | None = None) -> None:
    """Build, evaluate and activate the brand's adapter if there is none (resumes a paused build).

    The adapter's name and its transcripts come from the brand profile. ``background``: report to
    the status file, hold the builder lock (return at once when another builder holds it) and
    stop with the app that started this process. ``build``: ``training.build.build_with_settings``
    or a wrapper of it (the CLI's progress bar). Raises ``NothingToBuild`` and whatever the build
    raises (``FileExistsError``, ``FileNotFoundError``, ``ValueError``), with the status file
    saying "failed".
    """
    from supportdesk.brand import load_brand
    from supportdesk.models import find_adapter, list_adapters, read_active
    from supportdesk.models.adapters import write_active
    from supportdesk.training.background import CHECKPOINTS, BuilderGuard, BuildStatus, write_status
    from supportdesk.training.build import build_with_settings
    from supportdesk.training.checkpoint import BuildPaused
    from supportdesk.training.evaluate import evaluate_with_settings
    from supportdesk.training.prepare import prepare, write_dataset

    build = build or build_with_settings
    brand = load_brand(settings)
    adapter_name = check_plain_name(brand.adapter or DEFAULT_ADAPTER, "brand.adapter")
    status = BuildStatus(adapter_name, "preparing", pid=os.getpid())
    guard = BuilderGuard(settings.data_dir, status) if background else None
    if guard is not None and not guard.start():  # SIGTERM handling and the tie to the app are set here
        say(f"another adapter build is running for {settings.data_dir}: nothing to do")
        return

    def report(state: str, message: str = "") -> None:
        status.state, status.message = state, message
        if background:
            write_status(settings.data_dir, status)
    others = [a for a in list_adapters(settings.adapters_dir) if a.name != adapter_name]
    sample = next((a for a in list_adapters(settings.adapters_dir) if a.name == adapter_name), None)
    if others and sample is None:
        if read_active(settings.data_dir) is None:
            write_active(settings.data_dir, others[0].name)
        report("done", f"using {others[0].name}")
        return
    target = dataset_dir(settings, f"{adapter_name}-sample")
    if sample is None:
        transcripts = brand.transcripts
        if transcripts is None or not transcripts.is_file():
            why = (f"the brand profile ({brand.describe()}) names no transcripts" if transcripts is None
                   else f"the brand profile's transcripts {transcripts} do not exist")
            report("failed", f"{why}: prepare your own with 'supportdesk adapter prepare' and 'adapter build'")
            raise NothingToBuild(f"no adapter to build: {why}; prepare your own with 'supportdesk adapter prepare "
                                 "FILE' and 'supportdesk adapter build NAME'")
        report("preparing")
        if not background:
            say(f"First run: building the brand-voice adapter {adapter_name} from {transcripts} (only once; "
                "a paused build resumes).")
        write_dataset(prepare([transcripts], order_pattern=brand.order_pattern, company=brand.company or None,
                              keep_numbers=brand.keep_numbers(), sign_off=brand.sign_off,
                              brand_words=brand.name_words), target)
        report("loading")
        first: dict[str, float] = {}

        def on_step(info: StepInfo) -> None:
            now = time.monotonic()
            first.setdefault("t", now)
            first.setdefault("step", info.step)
            done = info.step - first["step"]
            status.step, status.total, status.loss = info.step, info.total, info.loss
            status.eta_s = (now - first["t"]) / done * (info.total - info.step) if done else None
            report("training")

        from supportdesk.cpu import has_fast_bf16

        # Shaped for the CPU: without native bfloat16 a step costs ~3x more, so one epoch over the
        # sample transcripts (it already passes the quality gate by far) instead of two.
        epochs = None if has_fast_bf16() else SAMPLE_EPOCHS_FP32
        say(f"training on {'bfloat16 (native)' if epochs is None else 'float32 (no native bfloat16)'}"
            f"{'' if epochs is None else f', {epochs:g} epoch'}")
        try:
            build(settings, adapter_name, target, replace=False, threads=threads, max_steps=max_steps, epochs=epochs,
                  checkpoint_dir=settings.data_dir / CHECKPOINTS,
                  should_stop=guard.should_stop if guard else lambda: False, on_step=on_step, say=say)
        except BuildPaused as exc:
            report("paused", str(exc))
            say(f"build paused: {exc}")
            return
        except BaseException as exc:
            report("failed", f"{type(exc).__name__}: {exc}")
            raise
        sample = find_adapter(settings.adapters_dir, adapter_name)
    metrics = sample.manifest.get("metrics") or {}
    if "adapter_perplexity" not in metrics:  # built but not evaluated yet (a run stopped in between)
        report("evaluating")
        metrics = evaluate_with_settings(settings, adapter_name, target).as_metrics()
    base, tuned = metrics["base_perplexity"], metrics["adapter_perplexity"]
    summary = f"perplexity {base:.2f} → {tuned:.2f} ({(base - tuned) / base:.0%} lower)"
    say(f"sample adapter: {summary}")
    if base > 0 and (base - tuned) / base >= SAMPLE_GATE:
        if read_active(settings.data_dir) is None:
            write_active(settings.data_dir, adapter_name)
        report("done", summary)
    else:
        report("rejected", f"not activated, the gate is {SAMPLE_GATE:.0%} lower: {summary}")


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _print(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _log_steps(build: Build) -> Build:
    """``build`` with a line in the log every 10 steps (the status file has every one)."""
    def logged(*args: Any, on_step: Callable[[StepInfo], None], **kwargs: Any) -> BuildResult:
        def step(info: StepInfo) -> None:
            on_step(info)
            if info.step % 10 == 0 or info.step == info.total:
                _print(f"step {info.step}/{info.total}, loss {info.loss:.3f}")

        return build(*args, on_step=step, **kwargs)

    return logged


def main(argv: Sequence[str] | None = None) -> int:
    """The background builder's entry point; also usable by hand. One line per problem, no traceback."""
    import argparse

    from pydantic import ValidationError

    from supportdesk.models.base import ModelMissing
    from supportdesk.settings import data_dir_problem, load_settings
    from supportdesk.training.build import build_with_settings

    parser = argparse.ArgumentParser(prog="python -m supportdesk.training.bootstrap",
                                     description="Build, evaluate and activate the brand's adapter if there is none.")
    parser.add_argument("--data-dir", type=Path, help="Runtime data folder. Env: SUPPORTDESK_DATA_DIR.")
    parser.add_argument("--kb", type=Path, dest="kb_dir", help="The KB folder whose brand profile names the adapter.")
    parser.add_argument("--background", action="store_true",
                        help="Report to the status file the app shows; SIGTERM pauses at a checkpoint; one builder "
                             "per data dir, ending with the app that started it.")
    parser.add_argument("--threads", type=_positive, help="Training threads (default: all cores).")
    parser.add_argument("--max-steps", type=_positive, help="Stop training after this many steps.")
    args = parser.parse_args(argv)
    try:
        settings = load_settings(data_dir=args.data_dir, kb_dir=args.kb_dir)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        _print(f"error: invalid settings: {problems}")
        return 1
    except Exception as exc:  # noqa: BLE001 - a malformed TOML file, say: one line in the log
        _print(f"error: cannot read settings: {exc}")
        return 1
    for warning in settings.warnings:
        _print(f"warning: {warning}")
    problem = data_dir_problem(settings.data_dir)
    if problem:
        _print(f"error: {problem}")
        return 1
    try:
        bootstrap(settings, background=args.background, threads=args.threads, max_steps=args.max_steps,
                  say=_print, build=_log_steps(build_with_settings))
    except (NothingToBuild, ModelMissing, FileExistsError, FileNotFoundError, ValueError) as exc:
        _print(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _print("error: interrupted: nothing was written, the previous adapter (if any) is untouched")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
