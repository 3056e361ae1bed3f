"""The terminal app, driven with Pilot over the real core and a deterministic model double."""

from __future__ import annotations

import dataclasses
import shutil
import time

import pytest
from conftest import SAMPLE_KB, ScriptedBackend

from supportdesk.kb import KnowledgeBase
from supportdesk.models import BackendUnavailable
from supportdesk.session import SupportSession
from supportdesk.settings import Settings
from supportdesk.tui.app import SupportDeskApp
from supportdesk.tui.screens.modals import ChunkScreen, HelpScreen
from supportdesk.tui.widgets.conversation import MessageView
from supportdesk.tui.widgets.sources import SourceItem, SourcesPanel

pytestmark = pytest.mark.slow


def grounded_reply(messages):
    if "Sources" in messages[-1].content:
        return "You can return it within 45 days of delivery [1]. Start the return in Roost [2]."
    return "You're welcome! Happy surfing."


@pytest.fixture
def make_app(sample_index, tmp_path):
    """An app over a real KB (sample index) with its own data dir and a scripted model."""
    base_settings, kb = sample_index

    def make(backend=None, data_dir=None, kb_override=None, **settings_updates):
        data = data_dir or tmp_path / "data"
        settings = base_settings.model_copy(update={"data_dir": data, **settings_updates})
        model = backend or ScriptedBackend(grounded_reply)

        def factory(s: Settings) -> SupportSession:
            return SupportSession(s, backend=model, kb=kb_override or kb)

        return SupportDeskApp(settings, session_factory=factory), model

    return make


async def ready(pilot, app) -> None:
    for _ in range(200):
        await pilot.pause(0.05)
        if app.session is not None:
            return
    raise AssertionError(f"session never became ready: {app._status_note}")


async def send(pilot, app, text: str) -> MessageView:
    app.query_one("#prompt").insert(text)
    await pilot.press("enter")
    for _ in range(400):
        await pilot.pause(0.05)
        if app._streaming is None and app._answer is None:
            break
    await pilot.pause(0.1)
    return app.query_one("#conversation").answers()[-1]


async def test_send_stream_and_sources(make_app):
    app, _model = make_app(ScriptedBackend(grounded_reply, delay=0.06))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt").insert("How many days do I have to return a router?")
        await pilot.press("enter")
        partial = ""
        for _ in range(100):  # catch the answer while it streams
            await pilot.pause(0.03)
            views = app.query_one("#conversation").answers()
            if views and views[-1].stream is not None:
                partial = views[-1].markdown.source
                if partial:
                    break
        for _ in range(200):
            await pilot.pause(0.05)
            if app._streaming is None:
                break
        view = app.query_one("#conversation").answers()[-1]
        assert view.stream is not None and partial and len(partial) < len(view.text)  # streamed, then finalised
        assert view.data["kind"] == "grounded" and "45 days" in view.text
        assert str(view.query_one("#badge").render()).strip() == "grounded"
        items = list(app.query_one(SourcesPanel).query(SourceItem))
        assert items and items[0].citation["cited"] and items[0].citation["number"] == 1
        assert "ms" in str(app.query_one("#stages").render()) or "s" in str(app.query_one("#stages").render())
        app.query_one("#source-list").focus()  # open the first source
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert isinstance(app.screen, ChunkScreen)
        await pilot.press("escape")


async def test_escape_cancels_the_answer(make_app):
    app, _ = make_app(ScriptedBackend("word " * 400, delay=0.1))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt").insert("hello there")
        await pilot.press("enter")
        for _ in range(100):  # wait until the answer is streaming
            await pilot.pause(0.05)
            views = app.query_one("#conversation").answers()
            if views and views[-1].stream is not None:
                break
        assert app._answer is not None
        await pilot.press("escape")
        for _ in range(100):
            await pilot.pause(0.05)
            if app._streaming is None:
                break
        stored = app.session.history.messages(app.session.conversation_id)[-1]
        assert stored.content.endswith("…(cancelled)") and len(stored.content.split()) < 100


async def test_sources_panel_follows_the_selected_answer(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        first = await send(pilot, app, "How many days do I have to return a router?")
        second = await send(pilot, app, "thanks!")
        assert app._selected is second and second.data["kind"] == "voice"
        first.focus()
        await pilot.pause(0.1)
        panel = app.query_one(SourcesPanel)
        assert app._selected is first
        reason = str(panel.query_one("#route-reason").render())
        assert "p(facts)" in reason and "answerability" in reason and ">=" in reason
        for _ in range(40):  # the layout catches up with the new text (slower on a busy machine)
            if panel.query_one("#route-reason").size.height >= 5:
                break
            await pilot.pause(0.05)
        assert panel.query_one("#route-reason").size.height >= 5  # both reasons visible, not clipped
        assert any(item.citation.get("cited") for item in panel.query(SourceItem))


async def test_feedback_and_history_survive_a_restart(make_app, tmp_path):
    app, _ = make_app(data_dir=tmp_path / "shared-data")
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "How many days do I have to return a router?")
        await pilot.press("ctrl+t")
        await pilot.pause(0.1)
        assert app.query_one("#conversation").answers()[-1].feedback == 1
    again, _ = make_app(data_dir=tmp_path / "shared-data")
    async with again.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        views = list(again.query(MessageView))
        assert [v.role for v in views] == ["user", "assistant"]
        assert views[1].feedback == 1 and views[1].data["citations"]
        await ready(pilot, again)
        assert [e["messages"][-1]["role"] for e in again.session.history.export(rated_good_only=True)] == ["assistant"]


async def test_reload_during_a_conversation(make_app, tmp_path, hash_embedder):
    kb_dir = tmp_path / "kb"
    shutil.copytree(SAMPLE_KB / "policies", kb_dir)
    settings = Settings(kb_dir=kb_dir, data_dir=tmp_path / "data")
    kb = KnowledgeBase(settings)
    assert kb.reload().ok
    app, _ = make_app(kb_override=kb, kb_dir=kb_dir)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        before = app.session.status().chunks
        (kb_dir / "new-policy.md").write_text("# Loyalty programme\n\nEvery third router is free for members.\n")
        await pilot.press("ctrl+r")
        view = await send(pilot, app, "thanks!")  # chat keeps working during the reload
        assert view.data["kind"] == "voice"
        for _ in range(200):
            await pilot.pause(0.05)
            if app.session.status().chunks > before:
                break
        assert app.session.status().chunks > before
        assert any("KB reloaded: 1 added" in n.message for n in app._notifications)


async def test_failures_are_notices_not_tracebacks(make_app, tmp_path, monkeypatch):
    class DownBackend(ScriptedBackend):
        def generate(self, messages, options):
            raise BackendUnavailable("Ollama is not answering at http://127.0.0.1:9: start it with 'ollama serve'")

    app, _ = make_app(DownBackend())
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        view = await send(pilot, app, "hello")
        assert view.data["kind"] == "error"
        assert any("not answering" in n.message for n in app._notifications)
        # the app is still usable: a missing KB folder on reload is a notice too
        monkeypatch.setattr(app.session.kb, "kb_dir", tmp_path / "gone")  # the shared sample KB: put back after
        await pilot.press("ctrl+r")
        for _ in range(100):
            await pilot.pause(0.05)
            if any("does not exist" in n.message for n in app._notifications):
                break
        assert any("does not exist" in n.message for n in app._notifications)
        await pilot.press("f1")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)


async def test_start_up_failure_is_shown(sample_index, tmp_path):
    def broken(settings):
        raise RuntimeError("model file not found: /nowhere.gguf (setting model.gguf_path)")

    settings = sample_index[0].model_copy(update={"data_dir": tmp_path / "d"})
    app = SupportDeskApp(settings, session_factory=broken)
    async with app.run_test(size=(100, 30)) as pilot:
        for _ in range(50):
            await pilot.pause(0.05)
            if app._notifications:
                break
        assert any("model file not found" in n.message for n in app._notifications)
        app.query_one("#prompt").insert("hello")
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert any("still starting up" in n.message for n in app._notifications) or app.session is None


async def test_escapes_in_messages_are_stripped(make_app):
    app, model = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "thanks \x1b[31mred\x1b[0m \x1b]0;pwn\x07!")
        user = [v for v in app.query(MessageView) if v.role == "user"][-1]
        assert "\x1b" not in user.text and user.text == "thanks red !"
        assert "\x1b" not in model.prompts[-1][-1].content


async def test_keys_are_remappable(make_app):
    from supportdesk.settings import TUISettings

    app, _ = make_app(tui=TUISettings(keymap={"reload-kb": "f5"}))
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        assert app._binding_keys()["reload-kb"][0] == "f5"
        await pilot.press("f5")
        await pilot.pause(0.2)
        assert any("reloading the knowledge base" in n.message for n in app._notifications)


# -- snapshots ---------------------------------------------------------------------------------


@pytest.fixture
def snapshot_app(sample_index, tmp_path):
    """A deterministic screen: a stored conversation, fixed KB load time."""
    base_settings, kb = sample_index
    settings = base_settings.model_copy(update={"data_dir": tmp_path / "snap"})
    from supportdesk.history import HistoryStore

    store = HistoryStore(settings.data_dir / "history.sqlite3")
    cid = store.new_conversation()
    store.add_message(cid, "user", "How long do I have to return a router?")
    store.add_message(
        cid, "assistant", "You can return it within **45 days** of delivery [1]. Start the return in Roost [2].",
        kind="grounded", reason="p(facts)=0.98 >= 0.50: example similarity facts 0.66 vs chat 0.17, best doc score 0.63",
        citations=[
            {"number": 1, "source": "policies/returns-and-refunds.txt", "heading": "Returns and Refunds Policy > The 45-day return window",
             "page": None, "score": 0.71, "snippet": "You can return any new Kestrel product within 45 days of the delivery date.", "text": "You can return any new Kestrel product within 45 days of the delivery date.", "cited": True},
            {"number": 2, "source": "faq.md", "heading": "FAQ > How long do I have to return a router?", "page": None,
             "score": 0.63, "snippet": "Start the return in Roost under Account > Orders.", "text": "Start the return in Roost under Account > Orders.", "cited": True},
            {"number": 0, "source": "policies/warranty.txt", "heading": "Kestrel Limited Hardware Warranty", "page": None,
             "score": 0.41, "snippet": "Kestrel Networks warrants that Kestrel hardware...", "text": "...", "cited": False},
        ],
        timings={"route_ms": 0.1, "embed_ms": 7.2, "search_ms": 0.9, "prompt_ms": 0.2, "ttft_ms": 812.0,
                 "generation_ms": 1650.0, "total_ms": 1661.0, "tokens_per_s": 121.0},
    )
    store.add_message(cid, "user", "thanks!")
    store.add_message(cid, "assistant", "You're welcome! Happy surfing.", kind="voice", reason="p(facts)=0.09 < 0.50",
                      timings={"route_ms": 0.1, "embed_ms": 6.9, "search_ms": 0.7, "prompt_ms": 0.0, "ttft_ms": 120.0,
                               "generation_ms": 240.0, "total_ms": 250.0})
    store.close()
    frozen = dataclasses.replace(kb.snapshot(), loaded_at=1_790_000_000.0, generation="gen-20261101T000000-000000001")

    class FrozenKB:
        def __getattr__(self, name):
            return getattr(kb, name)

        _snapshot = frozen
        reloading = False

    def factory(s):
        session = SupportSession(s, backend=ScriptedBackend(grounded_reply), kb=kb)
        session.kb = FrozenKB()
        return session

    return SupportDeskApp(settings, session_factory=factory)


async def _settle(pilot):
    app = pilot.app
    for _ in range(200):
        await pilot.pause(0.05)
        if app.session is not None:
            break
    app._status_note = "ready"
    app.refresh_status()
    app.query_one("#prompt").focus()
    await pilot.pause(0.2)


def test_snapshot_main_80x24(snap_compare, snapshot_app, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert snap_compare(snapshot_app, terminal_size=(80, 24), run_before=_settle)


def test_snapshot_main_140x40(snap_compare, snapshot_app, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert snap_compare(snapshot_app, terminal_size=(140, 40), run_before=_settle)


def test_snapshot_help(snap_compare, snapshot_app, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()

    async def open_help(pilot):
        await _settle(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)

    assert snap_compare(snapshot_app, terminal_size=(100, 30), run_before=open_help)


async def test_clarify_route_is_shown_like_the_others(make_app):
    app, model = make_app(ScriptedBackend("should not be used"))
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        view = await send(pilot, app, "How do I reset this device?")
        assert view.data["kind"] == "clarify" and view.text.startswith("Which device do you mean?")
        assert str(view.query_one("#badge").render()).strip() == "clarify"
        assert "this device" in str(app.query_one("#route-reason").render())
        assert model.prompts == []  # nothing was generated
