"""The sample adapter, built in the background so the app never waits for it.

The first start of the app has no brand-voice adapter yet. Instead of training it before the
app appears (minutes on a CPU with native bfloat16, far longer on one without), the app
starts the builder (``python -m supportdesk.training.bootstrap --background``, the same code as
``supportdesk adapter bootstrap``) as a separate process in the idle scheduling class (it runs
only on CPU time nobody else wants), chats with the bare base model meanwhile, and switches the
adapter in when the build has passed its evaluation. The builder reports through a small JSON status file in
the data dir; SIGTERM (the app quitting) pauses it at a checkpoint and the next start resumes.

While the app writes an answer it stops the builder outright (``held``: SIGSTOP, then SIGCONT):
even in the idle class a builder thread on the other core (often the same physical core's
sibling) slowed the chat's decode from ~110 to 54-59 tokens/s, and an answer takes seconds
while the build takes minutes. So the builder can use every core the rest of the time.

One builder per data dir, tied to the app that started it:

- The builder holds ``adapter-build.lock`` (an inter-process file lock) while it runs; a second
  one started for the same data dir finds it held and exits at once, touching nothing. Apps
  start builders under ``adapter-build.spawn.lock``, so two apps opening together start one.
- Every app on that data dir *follows* the running builder through its status file (progress
  line, switching the adapter in when it is done); only the app that started it (its parent)
  pauses it when quitting. A follower that sees the build paused or gone while it is still open
  resumes it itself (from the checkpoint), so quitting one of two apps costs the build at most
  a model reload, and the remaining app's progress line goes on; quitting the last app pauses it.
- The builder never outlives its app. On Linux it asks for ``SIGKILL`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG)``, set by the builder itself right after exec, then a check that
  the parent did not die before that); everywhere a watchdog thread checks its parent pid and
  the data dir every second and stops the builder when either is gone. A requested pause
  (SIGTERM) lifts the death signal so the checkpoint of the current step is written; a build
  killed outright resumes from its last periodic checkpoint.

Headless: nothing here imports Textual or torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from supportdesk.private import private_dir, write_private_text

STATUS_FILE = "adapter-build.json"
LOG_FILE = "adapter-build.log"
LOCK_FILE = "adapter-build.lock"
"""Held by the running builder: one per data dir."""
SPAWN_LOCK_FILE = "adapter-build.spawn.lock"
"""Held by an app while it decides whether to start a builder."""
PARENT_ENV = "SUPPORTDESK_BUILDER_PARENT"
"""The pid of the app that started the builder (the builder checks it is still its parent)."""
PR_SET_PDEATHSIG = 1
WATCH_INTERVAL_S = 1.0
CHECKPOINTS = "adapter-checkpoints"
ACTIVE_STATES = ("starting", "preparing", "loading", "training", "evaluating")
NICENESS = 10  # where SCHED_IDLE is refused: the chat still wins most of the CPU


def lower_priority() -> None:
    """Run only when nothing else wants the CPU (Linux SCHED_IDLE), else at nice 10.

    At nice 10 the trainer still took time slices from the chat's llama.cpp threads often
    enough to stall them (see cpu_load.py); an idle-class task yields at once.
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
            where = f"at step {self.step}/{self.total}" if self.total else "before training"
            return f"adapter {self.name} paused {where} (resumes next start)"
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
        pass
    try:  # so does anyone's zombie (an init that does not reap, in a container)
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
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
    every core at once instead of waiting for the next load sample (cpu_load.py).
    """
    stopped = pid_alive(pid) and _signal_group(pid, signal.SIGSTOP)
    if stopped:
        from supportdesk.cpu_load import forget_other_load

        forget_other_load()
    try:
        yield stopped
    finally:
        if stopped:
            _signal_group(pid, signal.SIGCONT)


def default_threads() -> int:
    """Every core: the builder runs in the idle class and is stopped while an answer is written."""
    return max(1, os.cpu_count() or 1)


def _lock(data_dir: Path, name: str, timeout: float) -> Any:
    from filelock import FileLock

    return FileLock(str(data_dir / name), timeout=timeout, mode=0o600)


def builder_lock_held(data_dir: Path) -> bool:
    """Is a builder running for this data dir (its lock held by a live process)?"""
    from filelock import Timeout

    if not (data_dir / LOCK_FILE).exists():
        return False
    lock = _lock(data_dir, LOCK_FILE, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


def running_builder(data_dir: Path) -> int | None:
    """The pid of the builder running for this data dir, if any (whoever started it)."""
    status = read_status(data_dir)
    if status is not None and status.running:
        return status.pid
    return None


def is_child(pid: int | None) -> bool:
    """Did this process start ``pid`` (and is it still running)? Only a parent may pause its builder."""
    if not pid:
        return False
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == 0


def start_sample_build(data_dir: Path, threads: int | None = None, bootstrap_args: tuple[str, ...] = (),
                       kb_dir: Path | None = None) -> int | None:
    """Start the background builder unless one is already running; returns its pid. ``kb_dir``: the
    KB folder whose brand profile names the adapter and its transcripts (default: the builder's settings).

    ``is_child(pid)`` tells whether this call started it. Call it from a thread that lives as
    long as the app (the main thread): Linux's parent-death signal fires when the *thread*
    that started the builder ends.
    """
    from filelock import Timeout

    private_dir(data_dir)
    try:
        with _lock(data_dir, SPAWN_LOCK_FILE, timeout=10):
            current = read_status(data_dir)
            if current is not None and current.running:
                _signal_group(current.pid, signal.SIGCONT)  # an app that died while holding it left it stopped
                return current.pid
            if builder_lock_held(data_dir):  # started by hand, or its status not written yet
                return current.pid if current is not None and pid_alive(current.pid) else None
            return _spawn(data_dir, threads, bootstrap_args, kb_dir)
    except Timeout:
        return running_builder(data_dir)  # another app is starting it right now


def _spawn(data_dir: Path, threads: int | None, bootstrap_args: tuple[str, ...], kb_dir: Path | None = None) -> int:
    count = threads or default_threads()
    env = dict(os.environ, OMP_NUM_THREADS=str(count), MKL_NUM_THREADS=str(count), OMP_WAIT_POLICY="PASSIVE",
               TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env[PARENT_ENV] = str(os.getpid())
    fd = os.open(data_dir / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as log:
        # No preexec_fn (not safe in a threaded app): the builder lowers its own priority and
        # ties itself to this process first thing after exec (BuilderGuard.start). Its own
        # session keeps the terminal's Ctrl+C and SIGHUP away from it; the tie ends it instead.
        process = subprocess.Popen(
            [sys.executable, "-m", "supportdesk.training.bootstrap", "--data-dir", str(data_dir),
             *(["--kb", str(kb_dir)] if kb_dir is not None else []),
             "--background", "--threads", str(count), *bootstrap_args],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env, start_new_session=True,
        )
    write_status(data_dir, BuildStatus("sample", "starting", pid=process.pid))
    return process.pid


def set_parent_death_signal(signum: int) -> bool:
    """Linux: have the kernel send ``signum`` to this process when its parent (thread) dies;
    0 lifts it. False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


class BuilderGuard:
    """The background builder's side: the data dir's builder lock, and the tie to its app.

    ``start()`` returns False when another builder holds the lock (exit, touching nothing).
    While ``state`` is "training", SIGTERM (a pause) and a lost parent stop the build at the
    next step (``should_stop``, a checkpoint is written); in any other state the builder
    exits at once, marking the build paused. A data dir that disappears ends it at once.
    """

    def __init__(self, data_dir: Path, status: BuildStatus, parent: int | None = None, use_prctl: bool = True,
                 interval_s: float = WATCH_INTERVAL_S) -> None:
        self.data_dir = data_dir
        self.status = status
        env_parent = os.environ.get(PARENT_ENV, "")
        self.parent = parent if parent is not None else (int(env_parent) if env_parent.isdigit() else None)
        self.use_prctl = use_prctl
        self.interval_s = interval_s
        self.stop_asked = False
        self.parent_lost = False
        self._lock_handle: Any = None

    def start(self) -> bool:
        if self.parent is not None:  # started by an app (by hand it runs at the priority it was given)
            lower_priority()
            if self.use_prctl:
                set_parent_death_signal(signal.SIGKILL)  # even a builder stopped while an answer is written
            if os.getppid() != self.parent:  # the app died before the signal was set
                os._exit(0)
        from filelock import Timeout

        private_dir(self.data_dir)
        lock = _lock(self.data_dir, LOCK_FILE, timeout=5)  # an app probing the lock holds it for microseconds
        try:
            lock.acquire()
        except Timeout:
            return False
        self._lock_handle = lock
        signal.signal(signal.SIGTERM, self._on_sigterm)
        if self.parent is not None:
            threading.Thread(target=self._watch, name="builder-watchdog", daemon=True).start()
        return True

    def should_stop(self) -> bool:
        return self.stop_asked or self.parent_lost

    def _on_sigterm(self, *_: Any) -> None:
        self.stop_asked = True
        if self.use_prctl:
            set_parent_death_signal(0)  # a requested pause: let it write the current step's checkpoint
        if self.status.state != "training":
            self._exit_now()

    def _exit_now(self) -> None:
        """Stop where we are: nothing half-written matters (the checkpoint is atomic)."""
        if self.data_dir.is_dir() and self.status.state in ("starting", "preparing", "loading"):
            self.status.state, self.status.message = "paused", ""
            with contextlib.suppress(OSError):
                write_status(self.data_dir, self.status)
        os._exit(0)

    def _watch(self) -> None:
        while True:
            time.sleep(self.interval_s)
            if not self.data_dir.is_dir():
                os._exit(0)  # the data dir is gone: nothing to write, nobody to report to
            if os.getppid() != self.parent:
                self.parent_lost = True
                os.kill(os.getpid(), signal.SIGTERM)  # the handler runs on the main thread
                return


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
