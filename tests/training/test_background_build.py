"""The first run never waits for the sample adapter: it is built by a background process that
reports to a status file, pauses at a checkpoint on SIGTERM and resumes on the next start."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import SAMPLE_KB, ScriptedBackend

from supportdesk.training.background import (
    BuildStatus,
    pause_build,
    pid_alive,
    read_status,
    start_sample_build,
    write_status,
)


def test_status_file_round_trip_and_lines(tmp_path):
    assert read_status(tmp_path) is None
    status = BuildStatus("kestrel-voice", "training", step=30, total=148, eta_s=420.0, pid=None)
    write_status(tmp_path, status)
    back = read_status(tmp_path)
    assert back.step == 30 and back.line() == "building adapter kestrel-voice: step 30/148, about 7 min left"
    assert not back.running  # no live process behind it
    (tmp_path / "adapter-build.json").write_text("[not, an, object")
    assert read_status(tmp_path) is None
    paused = BuildStatus("kestrel-voice", "paused", step=30, total=148)
    assert "resumes next start" in paused.line()


def _wait(data, predicate, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = read_status(data)
        if status is not None and predicate(status):
            return status
        time.sleep(0.5)
    raise AssertionError(f"status never reached the expected state: {read_status(data)}; log: "
                         f"{(data / 'adapter-build.log').read_text()[-2000:] if (data / 'adapter-build.log').exists() else ''}")


@pytest.mark.slow
def test_background_build_pauses_at_a_checkpoint_and_resumes(tmp_path, monkeypatch):
    """A real builder process on the real SmolLM2 base, stopped after a few steps (never run to the end)."""
    adapters = tmp_path / "adapters"
    adapters.mkdir()
    monkeypatch.setenv("SUPPORTDESK_ADAPTERS_DIR", str(adapters))
    data = tmp_path / "data"
    pid = start_sample_build(data, threads=1, bootstrap_args=("--max-steps", "40"))
    assert pid and pid_alive(pid)
    assert start_sample_build(data) == pid  # one builder at a time
    _wait(data, lambda s: s.state == "training" and s.step >= 2, 240)
    assert pause_build(data, pid, wait_s=60)
    paused = read_status(data)
    assert paused.state == "paused" and paused.step >= 2, paused
    assert (data / "adapter-checkpoints" / "kestrel-voice" / "checkpoint.safetensors").is_file()
    assert not (adapters / "kestrel-voice").exists()  # nothing half-built where the app looks

    again = start_sample_build(data, threads=1, bootstrap_args=("--max-steps", "40"))
    resumed = _wait(data, lambda s: s.pid == again and s.state == "training", 240)
    assert resumed.step >= paused.step  # the first step it reports is the checkpoint's, not 1
    assert pause_build(data, again, wait_s=60)


@pytest.fixture
def app_with_builder(settings_factory, small_kb, hash_embedder, monkeypatch, tmp_path):
    """An app whose first run starts a (stand-in) builder: a real process we control by its status file."""
    from supportdesk.kb import KnowledgeBase
    from supportdesk.session import SupportSession
    from supportdesk.tui.app import SupportDeskApp

    settings = settings_factory(small_kb, adapters_dir=tmp_path / "no-adapters")
    settings.tui.build_sample_adapter = True
    settings.brand.transcripts = SAMPLE_KB.parent / "transcripts" / "kestrel_care.jsonl"  # the brand has some
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.reload().ok
    started: list[int] = []

    def fake_start(data_dir, threads=1, bootstrap_args=(), kb_dir=None):
        process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        started.append(process.pid)
        write_status(data_dir, BuildStatus("kestrel-voice", "training", step=3, total=10, eta_s=120, pid=process.pid))
        return process.pid

    monkeypatch.setattr("supportdesk.training.background.start_sample_build", fake_start)
    app = SupportDeskApp(settings, session_factory=lambda s: SupportSession(s, backend=ScriptedBackend("Hi!"), kb=kb))
    return app, settings, started


async def test_app_opens_at_once_and_follows_the_background_build(app_with_builder):
    from supportdesk.models.adapters import write_active

    app, settings, started = app_with_builder
    async with app.run_test(size=(160, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.session is not None and started:
                break
        assert started, "the first run did not start the adapter build"
        await pilot.pause(1.2)
        status_text = str(app.query_one("#status").render())
        assert "building adapter kestrel-voice: step 3/10" in status_text
        switched: list[str | None] = []
        app.switch_worker = lambda backend, adapter: switched.append(adapter)  # the model swap itself is tested elsewhere
        write_active(settings.data_dir, "kestrel-voice")
        write_status(settings.data_dir, BuildStatus("kestrel-voice", "done", step=10, total=10, pid=started[0],
                                                    message="perplexity 20.00 → 12.00 (40% lower)"))
        await pilot.pause(1.5)
        assert switched == ["kestrel-voice"]
        assert "building adapter" not in str(app.query_one("#status").render())


async def test_quitting_pauses_the_build(app_with_builder):
    app, _settings, started = app_with_builder
    async with app.run_test(size=(120, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if started:
                break
    assert started and not pid_alive(started[0])  # SIGTERM sent on exit, waited for


def _state(pid: int) -> str:
    """The process's scheduler state letter: T when stopped."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        return handle.read().rsplit(")", 1)[1].split()[0]


def _settle_state(pid: int, wanted: str, seconds: float = 5.0) -> str:
    deadline = time.monotonic() + seconds
    while (state := _state(pid)) != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    return state


def test_held_stops_the_builder_and_lets_it_go_on_even_after_an_error():
    from supportdesk import cpu_load
    from supportdesk.training.background import held

    process = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
    try:
        cpu_load._ensure_started()
        with cpu_load._lock:
            cpu_load._state["other_cores"] = 1.0  # the builder's load, as the sampler saw it
        with held(process.pid) as stopped:
            assert stopped and _settle_state(process.pid, "T") == "T"
            assert cpu_load.other_cores_busy() == 0  # the answer's model may use every core at once
        assert _settle_state(process.pid, "R") == "R"
        with pytest.raises(RuntimeError), held(process.pid):
            raise RuntimeError("the answer failed")
        assert _settle_state(process.pid, "R") == "R"
        with held(None) as stopped:  # no builder: nothing to stop
            assert not stopped
    finally:
        process.kill()
        process.wait()


def test_a_stopped_builder_still_pauses_and_a_new_start_lets_it_go_on(tmp_path):
    """An app that died while holding the builder left it stopped: the next start continues it,
    and quitting still ends it (SIGTERM reaches a stopped process only once it runs again)."""
    import signal

    process = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.01)"],
                               start_new_session=True)
    try:
        write_status(tmp_path, BuildStatus("kestrel-voice", "training", pid=process.pid))
        os.kill(process.pid, signal.SIGSTOP)
        assert _settle_state(process.pid, "T") == "T"
        assert start_sample_build(tmp_path) == process.pid
        assert _settle_state(process.pid, "S") in ("S", "R")
        os.kill(process.pid, signal.SIGSTOP)
        assert _settle_state(process.pid, "T") == "T"
        assert pause_build(tmp_path, process.pid, wait_s=10)
    finally:
        process.kill()
        process.wait()


async def test_the_build_is_stopped_while_an_answer_is_written(app_with_builder):
    app, _settings, started = app_with_builder
    seen: list[str] = []

    def reply(_messages):
        seen.append(_state(started[0]))
        return "Happy to help with that."

    async with app.run_test(size=(160, 30)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.session is not None and started:
                break
        app.session._backend.reply = reply  # the scripted model answers through the session
        app.query_one("#prompt").text = "hello there"
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if seen and _state(started[0]) != "T":
                break
        assert seen == ["T"]  # stopped while the model wrote
        assert _state(started[0]) in ("S", "R")  # and going on after


@pytest.mark.parametrize("entry", ["cli", "builder"])
@pytest.mark.parametrize(("tuned", "state", "active"), [(5.6, "done", "kestrel-voice"), (18.9, "rejected", None)])
def test_the_sample_adapter_is_activated_only_past_the_quality_gate(cli, small_kb, tmp_path, monkeypatch, tuned, state,
                                                                    active, entry):
    """An evaluated sample adapter 72 % below the base is switched in; one 5 % below (a build cut
    short) is kept out and says why. The same through ``adapter bootstrap`` and the app's builder
    (the training module's entry point, no CLI)."""
    import json

    from supportdesk.models.adapters import read_active
    from supportdesk.training.bootstrap import main

    adapters = tmp_path / "adapters"
    sample = adapters / "kestrel-voice"
    sample.mkdir(parents=True)
    (sample / "adapter.gguf").write_bytes(b"GGUF")
    (sample / "manifest.json").write_text(json.dumps({"metrics": {"base_perplexity": 19.82,
                                                                  "adapter_perplexity": tuned}}))
    monkeypatch.setenv("SUPPORTDESK_ADAPTERS_DIR", str(adapters))
    monkeypatch.setenv("SUPPORTDESK_BRAND__ADAPTER", "kestrel-voice")  # the brand profile names its adapter
    if entry == "cli":
        result = cli("adapter", "bootstrap", "--background")
        assert result.exit_code == 0, result.output
    else:
        assert main(["--data-dir", str(tmp_path / "data"), "--kb", str(small_kb), "--background"]) == 0
    status = read_status(tmp_path / "data")
    assert status.state == state, status
    assert ("gate is 25% lower" in status.message) == (state == "rejected")
    assert read_active(tmp_path / "data") == active


# -- one builder per data dir, tied to its app (issue 30, item 6) --------------------------------


def _gone(pid: int, seconds: float) -> bool:
    """The process ended within ``seconds`` (a zombie nobody reaps counts as ended)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if _state(pid) == "Z":
                return True
        except (OSError, IndexError):
            return True
        time.sleep(0.1)
    return False


def _other_app(tmp_path, script: str, *args: str) -> tuple[subprocess.Popen, int]:
    """A stand-in for another app: a real process that starts ``script``'s process and prints
    its pid. That process is its child, not ours."""
    starter = ("import subprocess, sys, time\n"
               "child = subprocess.Popen([sys.executable, '-c', sys.argv[1], *sys.argv[2:]])\n"
               "print(child.pid, flush=True)\n"
               "time.sleep(300)\n")
    app = subprocess.Popen([sys.executable, "-c", starter, script, *args], stdout=subprocess.PIPE, text=True,
                           cwd=tmp_path)
    return app, int(app.stdout.readline())


def _end(*processes) -> None:
    import signal

    for process in processes:
        pid = process if isinstance(process, int) else process.pid
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if not isinstance(process, int):
            process.wait()


@pytest.mark.slow  # real builder processes
@pytest.mark.parametrize("how", ["SIGKILL", "SIGHUP"])
def test_a_real_builder_ends_with_the_app_that_started_it(tmp_path, monkeypatch, how):
    """kill -9 of the app, or its terminal closing (SIGHUP): the builder it started is gone
    within seconds, even though it runs in its own session (so the terminal never signals it)."""
    import signal

    adapters = tmp_path / "adapters"
    adapters.mkdir()
    monkeypatch.setenv("SUPPORTDESK_ADAPTERS_DIR", str(adapters))
    data = tmp_path / "data"
    app = subprocess.Popen(
        [sys.executable, "-c", ("import sys, time\nfrom pathlib import Path\n"
                                "from supportdesk.training.background import start_sample_build\n"
                                "print(start_sample_build(Path(sys.argv[1]), threads=1), flush=True)\n"
                                "time.sleep(300)\n"), str(data)],
        stdout=subprocess.PIPE, text=True)
    builder = int(app.stdout.readline())
    try:
        # the builder runs its own code (its status, its pid): tied to the app by then
        _wait(data, lambda s: s.pid == builder and s.state in ("preparing", "loading", "training"), 120)
        cmdline = Path(f"/proc/{builder}/cmdline").read_bytes().split(b"\0")
        assert b"supportdesk.training.bootstrap" in cmdline and b"adapter" not in cmdline  # the training code, no CLI
        os.kill(app.pid, getattr(signal, how))
        app.wait(10)
        assert _gone(builder, 10), f"the builder outlived its app ({how})"
    finally:
        _end(app, builder)


@pytest.mark.parametrize(("state", "exits_by"), [("preparing", "at once, marked paused"),
                                                 ("training", "at the next step")])
def test_without_the_death_signal_the_builder_sees_its_parent_gone(tmp_path, state, exits_by):
    """The fallback where prctl is not available: the watchdog sees the parent pid change."""
    import signal

    data = tmp_path / "data"
    builder_code = (
        "import os, sys, time\nfrom pathlib import Path\n"
        "from supportdesk.training.background import BuilderGuard, BuildStatus\n"
        "status = BuildStatus('kestrel-voice', sys.argv[2], pid=os.getpid())\n"
        "guard = BuilderGuard(Path(sys.argv[1]), status, parent=os.getppid(), use_prctl=False, interval_s=0.2)\n"
        "assert guard.start()\n"
        "print('started', flush=True)\n"
        "while not guard.should_stop():\n    time.sleep(0.05)\n"
        "Path(sys.argv[1], 'stopped-at-step').write_text('yes')\n")
    data.mkdir()
    app, builder = _other_app(tmp_path, builder_code, str(data), state)
    try:
        deadline = time.monotonic() + 30
        while not (data / "adapter-build.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
        os.kill(app.pid, signal.SIGKILL)
        app.wait(10)
        assert _gone(builder, 10), f"the builder outlived its app ({exits_by})"
        if state == "training":
            assert (data / "stopped-at-step").exists()  # stopped through should_stop: a checkpoint is written
        else:
            assert read_status(data).state == "paused"
    finally:
        _end(app, builder)


@pytest.mark.slow  # real builder processes
@pytest.mark.parametrize("command", [("supportdesk.training.bootstrap",), ("supportdesk", "adapter", "bootstrap")],
                         ids=["builder", "cli"])
def test_a_second_builder_for_the_same_data_dir_exits_at_once(tmp_path, monkeypatch, command):
    """The app's builder (the training module) and the CLI's ``adapter bootstrap`` alike."""
    from filelock import FileLock

    adapters = tmp_path / "adapters"
    adapters.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    write_status(data, BuildStatus("kestrel-voice", "training", step=7, total=148, pid=os.getpid()))
    before = (data / "adapter-build.json").read_text()
    env = dict(os.environ, SUPPORTDESK_ADAPTERS_DIR=str(adapters), SUPPORTDESK_BUILDER_PARENT=str(os.getpid()))
    with FileLock(str(data / "adapter-build.lock")):  # the running builder holds it
        started = time.monotonic()
        try:
            run = subprocess.run([sys.executable, "-m", command[0], "--data-dir", str(data), *command[1:],
                                  "--background", "--threads", "1"], env=env, capture_output=True, text=True,
                                 timeout=90, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("a second builder started building instead of leaving it to the first") from exc
    assert run.returncode == 0, run.stderr
    assert "another adapter build is running" in run.stderr
    assert time.monotonic() - started < 60
    assert (data / "adapter-build.json").read_text() == before  # nothing of the first one's touched


async def test_a_second_app_follows_the_build_and_quitting_it_leaves_the_build_alone(app_with_builder, tmp_path):
    """Two apps on one data dir: the second follows the first's builder (progress line), never
    starts its own, and quitting it does not pause the build the first one runs."""
    app, settings, started = app_with_builder
    other, builder = _other_app(tmp_path, "import time; time.sleep(120)")
    try:
        write_status(settings.data_dir, BuildStatus("kestrel-voice", "training", step=3, total=10, eta_s=120,
                                                    pid=builder))
        async with app.run_test(size=(160, 30)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if app.session is not None:
                    break
            await pilot.pause(1.2)
            assert started == []  # no second builder
            assert "building adapter kestrel-voice: step 3/10" in str(app.query_one("#status").render())
            assert app._builder_pid == builder and not app._build_owner
        assert pid_alive(builder)  # not paused by the follower quitting
    finally:
        _end(other, builder)


async def test_a_build_whose_app_quit_goes_on_in_the_app_still_open(app_with_builder, tmp_path):
    """The app running the build quits (the build pauses at a checkpoint): the other app open
    on that data dir resumes it from there, and its progress line says so instead of vanishing."""
    import signal

    app, settings, started = app_with_builder
    other, builder = _other_app(tmp_path, "import time; time.sleep(120)")
    try:
        write_status(settings.data_dir, BuildStatus("kestrel-voice", "training", step=3, total=10, pid=builder))
        async with app.run_test(size=(200, 30)) as pilot:
            for _ in range(100):
                await pilot.pause(0.05)
                if app.session is not None:
                    break
            await pilot.pause(1.2)
            assert started == [] and app._builder_pid == builder
            os.kill(builder, signal.SIGKILL)  # the first app paused its builder and quit
            write_status(settings.data_dir, BuildStatus("kestrel-voice", "paused", step=3, total=10, pid=builder))
            for _ in range(60):
                await pilot.pause(0.1)
                if started:
                    break
            assert len(started) == 1 and app._builder_pid == started[0] and app._build_owner
            await pilot.pause(1.2)
            assert "building adapter kestrel-voice" in str(app.query_one("#status").render())
            assert any("goes on here" in n.message for n in app._notifications)
        assert not pid_alive(started[0])  # now its own: paused when this last app quits
    finally:
        _end(other, builder)
