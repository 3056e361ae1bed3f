"""How many cores the embedded model can count on right now.

llama.cpp splits each token's work over ``n_threads`` threads that meet at barriers many
times per token. When another process (an adapter build, a second supportdesk, an index
build) keeps one of two cores busy, one of our threads is often descheduled and the other
waits for it: measured here, 2 threads fell from ~100 to 0.3-0.9 tokens/s beside the
background adapter trainer, while 1 thread kept 54-74 tokens/s. So the embedded backend
asks this module before each generation and uses fewer threads while the CPU is contended.

A daemon thread samples ``/proc/stat`` (all CPU time) and ``/proc/self/stat`` (ours) twice a
second; the difference is what other processes use. Work inside this process that competes
with generation (an index build in a worker) says so with ``busy_with``.

Index builds yield to answers, in this process and across processes: while any supportdesk
process on the machine writes an answer (a marker file per process in a per-user runtime
folder), a build waits before its next batch (at most a few seconds, so a busy team server
still finishes its reloads), and the answer's model counts the builds' cores as free. With a
build beside it on 2 cores, one llama.cpp thread made ~0.57x the idle rate; both, with the
build waiting, make ~1x.

``lower_this_thread`` gives the thread that generates a higher niceness, so a search or the
screen gets a core first while the model writes (llama.cpp's OpenMP workers are created by
that thread and inherit its niceness).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_SAMPLE_S = 0.5
_lock = threading.Lock()
_state = {"other_cores": 0.0, "inside": 0, "generating": 0, "forget": 0, "yielding": 0}
YIELD_MAX_S = 3.0
"""The longest a build waits for answers before its next batch (then it goes on with one thread)."""
_started = False
_lowered = threading.local()


def _total_busy() -> float | None:
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            fields = [int(x) for x in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return float(sum(fields[:8]) - idle)


def _own_busy() -> float | None:
    try:
        with open("/proc/self/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return float(int(fields[11]) + int(fields[12]))  # utime + stime


def _sample_forever() -> None:
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    last = (time.monotonic(), _total_busy(), _own_busy())
    while True:
        time.sleep(_SAMPLE_S)
        now = (time.monotonic(), _total_busy(), _own_busy())
        if None not in last and None not in now:
            elapsed = now[0] - last[0]
            other = ((now[1] - last[1]) - (now[2] - last[2])) / ticks / max(elapsed, 1e-3)  # type: ignore[operator]
            with _lock:
                if _state["forget"]:  # this window began before the load we were told is gone
                    _state["forget"] = 0
                else:
                    _state["other_cores"] = max(0.0, other)
        last = now


def _ensure_started() -> None:
    global _started
    with _lock:
        if _started:
            return
        _started = True
    threading.Thread(target=_sample_forever, name="supportdesk-cpu-load", daemon=True).start()


def other_cores_busy() -> float:
    """Cores other processes kept busy over the last half second, plus our own background jobs."""
    _ensure_started()
    with _lock:
        return _state["other_cores"] + _state["inside"]


def forget_other_load() -> None:
    """Other processes' load just stopped (we paused the background adapter build): count it as
    gone until the next sample, so the generation about to start may use every core."""
    _ensure_started()
    with _lock:
        _state["other_cores"] = 0.0
        _state["forget"] = 1


@contextlib.contextmanager
def busy_with(what: str, cores: int = 1) -> Iterator[None]:
    """Mark CPU-heavy work in this process (``what`` is for readers of the code) while it runs."""
    with _lock:
        _state["inside"] += cores
    try:
        yield
    finally:
        with _lock:
            _state["inside"] -= cores


def marks_dir() -> Path:
    """Per-user folder of this machine's marker files (answering-PID, building-PID)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or ("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir())
    return Path(base) / f"supportdesk-{os.getuid() if hasattr(os, 'getuid') else 'user'}"


def _set_mark(kind: str, on: bool) -> None:
    path = marks_dir() / f"{kind}-{os.getpid()}"
    try:
        if on:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.touch()
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass  # no writable runtime folder: processes just don't coordinate


def _others_marked(kind: str) -> bool:
    """Another live process holds a ``kind`` mark (a crashed one's file is ignored)."""
    try:
        names = os.listdir(marks_dir())
    except OSError:
        return False
    for name in names:
        mark, _, pid = name.rpartition("-")
        if mark != kind or not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            continue
        except PermissionError:
            pass
        return True
    return False


def answer_in_progress() -> bool:
    """An answer is being written, in this process or another supportdesk process here."""
    return is_generating() or _others_marked("answering")


def wait_while_answering(max_s: float = YIELD_MAX_S) -> bool:
    """A build's pause before its next batch; returns whether an answer is still being written."""
    deadline = time.monotonic() + max_s
    while answer_in_progress():
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.02)
    return False


@contextlib.contextmanager
def _counted(key: str, mark: str) -> Iterator[None]:
    """Count ``key`` up while the block runs; the process holds the ``mark`` file while it is > 0."""
    with _lock:
        _state[key] += 1
        first = _state[key] == 1
    if first:
        _set_mark(mark, True)
    try:
        yield
    finally:
        with _lock:
            _state[key] -= 1
            last = _state[key] == 0
        if last:
            _set_mark(mark, False)


def yielding_build() -> contextlib.AbstractContextManager[None]:
    """Mark an index build that waits for answers (``wait_while_answering`` between batches),
    so a model starting to generate here or in another process counts its cores as free."""
    return _counted("yielding", "building")


def threads_for(wanted: int) -> int:
    """At most ``wanted`` threads, no more than the cores that are free now, at least one.

    A yielding index build (here or in another process) stops within a batch once this
    generation is marked, so its cores count as free (other load still counts)."""
    _ensure_started()
    cores = os.cpu_count() or 1
    with _lock:
        inside, yielding, other = _state["inside"], _state["yielding"], _state["other_cores"]
    if yielding:
        inside = 0  # our build's embedding batches (calibration runs after them, not beside)
    if _others_marked("building"):
        other = max(0.0, other - (cores - 1))  # the other build's workers; keep a share for the rest
    free = cores - other - inside
    return max(1, min(wanted, math.floor(free + 0.3)))


def generating() -> contextlib.AbstractContextManager[None]:
    """Mark a generation in progress: index builds here and in other processes yield to it."""
    return _counted("generating", "answering")


def is_generating() -> bool:
    with _lock:
        return _state["generating"] > 0


def lower_this_thread(nice: int) -> bool:
    """Raise this thread's niceness by ``nice`` (Linux: a thread is its own scheduling entity).

    Only worker threads: a process's main thread keeps its priority, because an unprivileged
    process cannot raise it back and every thread it starts later would inherit it. Once per
    thread; returns whether this thread runs lowered."""
    if nice <= 0 or threading.current_thread() is threading.main_thread():
        return False
    if getattr(_lowered, "done", False):
        return True
    try:
        me = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, me, min(19, os.getpriority(os.PRIO_PROCESS, me) + nice))
    except (AttributeError, OSError):
        return False
    _lowered.done = True
    return True
