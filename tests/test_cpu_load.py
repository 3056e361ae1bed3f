"""The embedded model's thread count follows the CPU: fewer threads while other work holds cores."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from supportdesk import cpu_load


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


def test_a_build_waits_while_another_process_writes_an_answer(tmp_path, monkeypatch):
    """The answering mark crosses processes; a crashed answerer's leftover mark is ignored."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    code = ("import sys, time\nfrom supportdesk import cpu_load\n"
            "with cpu_load.generating():\n    print('writing', flush=True)\n    time.sleep(60)\n")
    answerer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                env=dict(os.environ, XDG_RUNTIME_DIR=str(tmp_path)))
    try:
        assert answerer.stdout.readline().strip() == "writing"
        assert cpu_load.answer_in_progress()
        started = time.monotonic()
        assert cpu_load.wait_while_answering(max_s=0.3) is True  # waited, bounded, and says so
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        answerer.kill()  # no cleanup runs: its mark file stays behind
        answerer.wait()
    assert list((tmp_path / f"supportdesk-{os.getuid()}").glob("answering-*"))
    assert not cpu_load.answer_in_progress()
    assert cpu_load.wait_while_answering(max_s=5) is False


def test_an_answer_here_marks_itself_and_a_yielding_build_leaves_it_every_core(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    marks = tmp_path / f"supportdesk-{os.getuid()}"
    with cpu_load.generating():
        assert (marks / f"answering-{os.getpid()}").exists()
        assert cpu_load.answer_in_progress()
    assert not (marks / f"answering-{os.getpid()}").exists()
    cores = os.cpu_count() or 1
    with cpu_load.busy_with("index build", cores=cores):
        assert cpu_load.threads_for(cores) == 1  # work that does not yield keeps its cores
        with cpu_load.yielding_build():
            assert (marks / f"building-{os.getpid()}").exists()
            assert _settle(lambda: cpu_load.threads_for(cores) == cores, 10.0)  # the build waits for it
    assert not (marks / f"building-{os.getpid()}").exists()
