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
