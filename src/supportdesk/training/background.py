"""The sample adapter, built in the background so the app never waits for it.

The first start of the app has no brand-voice adapter yet. Instead of training it before the
app appears (minutes on a CPU with native bfloat16, far longer on one without), the app
starts ``supportdesk adapter bootstrap --background`` as a separate process in the idle
scheduling class (it runs only on CPU time nobody else wants), chats with the bare base model meanwhile, and switches the adapter in when
the build has passed its evaluation. The builder reports through a small JSON status file in
the data dir; SIGTERM (the app quitting) pauses it at a checkpoint and the next start resumes.

While the app writes an answer it stops the builder outright (``held``: SIGSTOP, then SIGCONT):
even in the idle class a builder thread on the other core (often the same physical core's
sibling) slowed the chat's decode from ~110 to 54-59 tokens/s, and an answer takes seconds
while the build takes minutes. So the builder can use every core the rest of the time.

Headless: nothing here imports Textual or torch.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from supportdesk.private import private_dir, write_private_text

STATUS_FILE = "adapter-build.json"
LOG_FILE = "adapter-build.log"
CHECKPOINTS = "adapter-checkpoints"
ACTIVE_STATES = ("starting", "preparing", "loading", "training", "evaluating")
NICENESS = 10  # where SCHED_IDLE is refused: the chat still wins most of the CPU


def lower_priority() -> None:
    """Run only when nothing else wants the CPU (Linux SCHED_IDLE), else at nice 10.

    At nice 10 the trainer still took time slices from the chat's llama.cpp threads often
    enough to stall them (see models/cpu_load.py); an idle-class task yields at once.
    """
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(NICENESS)


@dataclass
class BuildStatus:
    """What the background builder is doing, as the app's status line shows it."""

    name: str
    state: str  # starting | preparing | loading | training | evaluating | done | paused | failed | rejected
    step: int = 0
    total: int = 0
    loss: float | None = None
    started: float = field(default_factory=time.time)
    eta_s: float | None = None
    pid: int | None = None
    message: str = ""
    updated: float = field(default_factory=time.time)

    @property
    def running(self) -> bool:
        return self.state in ACTIVE_STATES and pid_alive(self.pid)

    def line(self) -> str:
        """One short phrase for a status line."""
        if self.state == "training" and self.total:
            eta = f", about {max(1, round(self.eta_s / 60))} min left" if self.eta_s else ""
            return f"building adapter {self.name}: step {self.step}/{self.total}{eta}"
        if self.state in ACTIVE_STATES:
            return f"building adapter {self.name}: {self.state}…"
        if self.state == "paused":
            return f"adapter {self.name} paused at step {self.step}/{self.total} (resumes next start)"
        return f"adapter {self.name}: {self.state}" + (f" ({self.message})" if self.message else "")


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child of ours counts as gone
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def read_status(data_dir: Path) -> BuildStatus | None:
    try:
        data = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
        return BuildStatus(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def write_status(data_dir: Path, status: BuildStatus) -> None:
    status.updated = time.time()
    private_dir(data_dir)
    tmp = data_dir / f".{STATUS_FILE}.tmp{os.getpid()}"
    write_private_text(tmp, json.dumps(asdict(status)))
    os.replace(tmp, data_dir / STATUS_FILE)


def _signal_group(pid: int | None, signum: int) -> bool:
    """Signal the builder's process group (its own session), or the process alone."""
    if not pid:
        return False
    try:
        os.killpg(pid, signum)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signum)
        except (ProcessLookupError, PermissionError):
            return False
    return True


@contextlib.contextmanager
def held(pid: int | None) -> Iterator[bool]:
    """Stop the background builder while the block runs (an answer being written); yields
    whether a builder was stopped. It continues where it was (SIGCONT), even on an error.

    Its load of the last half second is forgotten too, so the model about to generate uses
    every core at once instead of waiting for the next load sample (models/cpu_load.py).
    """
    stopped = pid_alive(pid) and _signal_group(pid, signal.SIGSTOP)
    if stopped:
        from supportdesk.models.cpu_load import forget_other_load

        forget_other_load()
    try:
        yield stopped
    finally:
        if stopped:
            _signal_group(pid, signal.SIGCONT)


def default_threads() -> int:
    """Every core: the builder runs in the idle class and is stopped while an answer is written."""
    return max(1, os.cpu_count() or 1)


def start_sample_build(data_dir: Path, threads: int | None = None, bootstrap_args: tuple[str, ...] = (),
                       kb_dir: Path | None = None) -> int | None:
    """Start the background builder unless one is already running; returns its pid. ``kb_dir``: the
    KB folder whose brand profile names the adapter and its transcripts."""
    current = read_status(data_dir)
    if current is not None and current.running:
        _signal_group(current.pid, signal.SIGCONT)  # an app that died while holding it left it stopped
        return current.pid
    threads = threads or default_threads()
    private_dir(data_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE",
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    fd = os.open(data_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    log = os.fdopen(fd, "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "supportdesk", "--data-dir", str(data_dir),
         *(["--kb", str(kb_dir)] if kb_dir is not None else []), "adapter", "bootstrap",
         "--background", "--threads", str(threads), *bootstrap_args],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        preexec_fn=lower_priority,  # noqa: PLW1509 - only a scheduler call, before exec
    )
    log.close()
    write_status(data_dir, BuildStatus("sample", "starting", pid=process.pid))
    return process.pid


def pause_build(data_dir: Path, pid: int | None = None, wait_s: float = 10.0) -> bool:
    """Ask the builder to checkpoint and stop (SIGTERM); True when it stopped within ``wait_s``."""
    status = read_status(data_dir)
    pid = pid or (status.pid if status else None)
    if not pid_alive(pid):
        return True
    try:
        os.kill(pid, signal.SIGTERM)  # type: ignore[arg-type]
    except ProcessLookupError:
        return True
    _signal_group(pid, signal.SIGCONT)  # a stopped builder acts on SIGTERM only once it runs again
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    return False
