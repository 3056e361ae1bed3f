"""The embedded model's thread count follows the CPU: fewer threads while other work holds cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from supportdesk.models import cpu_load


def _settle(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_other_processes_and_background_jobs_take_threads_away():
    cores = os.cpu_count() or 1
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
    try:
        assert _settle(lambda: cpu_load.other_cores_busy() >= cores - 0.5), cpu_load.other_cores_busy()
        assert cpu_load.threads_for(cores) == 1
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    with cpu_load.busy_with("index build", cores=cores):
        assert cpu_load.threads_for(cores) == 1  # an index build in this process counts too
    assert cpu_load.threads_for(1) == 1


def test_threads_come_back_when_the_cpu_is_free():
    assert _settle(lambda: cpu_load.threads_for(2) == min(2, os.cpu_count() or 1), 10.0), cpu_load.other_cores_busy()


def test_the_generating_thread_runs_at_lower_priority_and_the_main_thread_never_does():
    import threading

    me = threading.get_native_id()
    before = os.getpriority(os.PRIO_PROCESS, me)
    assert cpu_load.lower_this_thread(5) is False  # the main thread keeps its priority
    assert os.getpriority(os.PRIO_PROCESS, me) == before
    seen: dict[str, int | bool] = {}

    def worker() -> None:
        tid = threading.get_native_id()
        seen["first"] = cpu_load.lower_this_thread(5)
        seen["again"] = cpu_load.lower_this_thread(5)  # once per thread, not 5 more each answer
        seen["nice"] = os.getpriority(os.PRIO_PROCESS, tid)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == {"first": True, "again": True, "nice": min(19, before + 5)}
    assert os.getpriority(os.PRIO_PROCESS, me) == before  # only that thread was lowered
    assert cpu_load.lower_this_thread(0) is False
