"""The terminal app, driven with Pilot over the real core and a deterministic model double."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from conftest import SAMPLE_KB, HashEmbeddings, ScriptedBackend, grounded_reply, send
from fixtures.team_server import running

from supportdesk.kb import KnowledgeBase
from supportdesk.models import BackendUnavailable
from supportdesk.session import SupportSession
from supportdesk.settings import Settings, TUISettings
from supportdesk.tui.app import COMMANDS, SupportDeskApp
from supportdesk.tui.screens.modals import ChunkScreen, HelpScreen
from supportdesk.tui.widgets.conversation import ConversationView, MessageView
from supportdesk.tui.widgets.sources import SourceItem, SourcesPanel

pytestmark = pytest.mark.slow


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
        assert app._ticket is not None
        await pilot.press("escape")
        for _ in range(100):
            await pilot.pause(0.05)
            stored = app.session.history.messages(app.session.conversation_id)
            if stored and stored[-1].role == "assistant":
                break
        stored = app.session.history.messages(app.session.conversation_id)[-1]
        assert stored.content.endswith("…(cancelled)") and len(stored.content.split()) < 100


class SlowStartBackend(ScriptedBackend):
    """A model that cannot be interrupted before its first token (llama.cpp evaluating the prompt)."""

    def __init__(self, reply, first_token_s: float) -> None:
        super().__init__(reply)
        self.first_token_s = first_token_s
        self.started = threading.Event()

    def generate(self, messages, options):
        generation = super().generate(messages, options)
        produce = generation._produce

        def slow(gen):
            self.started.set()
            time.sleep(self.first_token_s)  # deaf to cancel, like a prompt evaluation
            yield from produce(gen)

        generation._produce = slow
        return generation


async def test_escape_while_thinking_returns_at_once_and_the_answer_ends_behind(make_app):
    """Esc while "thinking…" frees the screen at once, whatever the model is doing; the cancelled
    answer is still stored, before the next question, which waits for it and says so."""
    model = SlowStartBackend(grounded_reply, first_token_s=2.5)
    app, _ = make_app(model)
    async with app.run_test(size=(100, 30)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt").insert("How many days do I have to return a router?")
        await pilot.press("enter")
        for _ in range(100):
            await pilot.pause(0.05)
            if model.started.is_set():
                break
        assert model.started.is_set()
        view = app.query_one("#conversation").answers()[-1]
        assert "thinking" in str(view.query_one("#note").render())
        pressed = time.monotonic()
        await pilot.press("escape")
        await pilot.pause(0.05)
        assert time.monotonic() - pressed < 1.0
        assert app._ticket is None and app._streaming is None  # the prompt takes a new question now
        assert "cancelled" in str(view.query_one("#note").render())
        second = await send(pilot, app, "thanks!")
        assert second is not view and second.data["kind"] == "voice"
        stored = app.session.history.messages(app.session.conversation_id)
        assert [m.role for m in stored] == ["user", "assistant", "user", "assistant"]  # in order
        assert stored[1].content.endswith("(cancelled)") and stored[3].content == "You're welcome! Happy surfing."
        assert view.message_id == stored[1].id  # the cancelled answer is on screen with its stored id


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
        for _ in range(600):  # the reload runs in a worker: up to 30 s on a loaded machine
            await pilot.pause(0.05)
            if any("does not exist" in n.message for n in app._notifications):
                break
        assert any("does not exist" in n.message for n in app._notifications), [n.message for n in app._notifications]
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


# -- as a team uses it (issue 30, item 17) ----------------------------------------------------


async def test_tab_skips_the_messages_and_typing_on_one_goes_to_the_prompt(make_app):
    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        first = await send(pilot, app, "How many days do I have to return a router?")
        await send(pilot, app, "thanks!")
        prompt = app.query_one("#prompt")
        prompt.focus()
        await pilot.pause(0.05)
        stops = []
        for _ in range(12):
            await pilot.press("tab")
            stops.append(app.focused)
            if app.focused is prompt:
                break
        assert app.focused is prompt and len(stops) <= 4, stops  # a few stops, not two per answer
        assert not any(isinstance(w, MessageView) for w in stops)
        # The messages are reachable: Tab to the conversation, up/down walk them, the panels follow.
        app.query_one(ConversationView).focus()
        await pilot.press("up", "up", "up")
        await pilot.pause(0.1)
        assert app.focused is first and app._selected is first
        # Typing while a message has focus: the keys go to the prompt, none is lost.
        await pilot.press("h", "i", "space", "t")
        assert app.focused is prompt and prompt.text == "hi t"
        app.query_one(ConversationView).focus()
        await pilot.press("up", "tab")  # Tab from a message leaves the conversation
        assert not isinstance(app.focused, MessageView | ConversationView)


async def test_a_finished_answer_is_in_sight_not_under_the_prompt(make_app):
    policy = ("You can return any new Kestrel product within 45 days of the delivery date [1]. "
              "Start the return in Roost under Account > Orders [2]. ")

    def long_reply(messages):
        return policy * 6 if "Sources" in messages[-1].content else "You're welcome!"

    app, _ = make_app(ScriptedBackend(long_reply, delay=0.005))
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await send(pilot, app, "How many days do I have to return a router?")
        view = await send(pilot, app, "How long do I have to return a router and where do I start?")
        await pilot.pause(0.3)
        conversation = app.query_one(ConversationView)
        assert conversation.max_scroll_y > 0  # the conversation is taller than its pane
        assert conversation.scroll_y == conversation.max_scroll_y
        assert view.region.bottom <= conversation.region.bottom  # its last line is above the prompt
        conversation.scroll_home(animate=False)  # the agent scrolls up to read: not pulled back
        await pilot.pause(0.1)
        conversation.follow()
        await pilot.pause(0.1)
        assert conversation.scroll_y == 0


async def test_the_palette_lists_the_apps_commands_first_and_help_names_it(make_app):
    from textual.command import CommandList, CommandPalette

    app, _ = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        app.action_command_palette()
        for _ in range(40):
            await pilot.pause(0.05)
            if isinstance(app.screen, CommandPalette) and app.screen.query_one(CommandList).option_count:
                break
        listing = app.screen.query_one(CommandList)
        await pilot.pause(0.3)
        shown = [str(listing.get_option_at_index(i).prompt).split("\n")[0] for i in range(listing.option_count)]
        names = [name for name, _action, _help in COMMANDS]
        assert shown[:len(names)] == names, shown
        assert "Quit" in shown[len(names):] or "Keys" in shown[len(names):]  # Textual's own, after
        await pilot.press("escape")
        await pilot.pause(0.1)
        await pilot.press("f1")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        assert any(key == "ctrl+p" and "palette" in description for key, description, _id in app.screen.rows)


async def test_a_follow_up_is_answered_from_the_same_sources_as_ask_conversations(make_app):
    """The TUI's history and an ``ask --conversations`` line with the same texts give the
    pipeline the same turns: "and for the Perch?" is searched and answered alike."""
    from supportdesk.answers import AnswerPipeline
    from supportdesk.cli.ask import read_conversations

    def reply(messages):
        return "Hold the reset button for 10 seconds [1]. See also [2]." if "Sources" in messages[-1].content else "ok"

    app, _ = make_app(ScriptedBackend(reply))
    first = "How do I factory reset my Aerie AX3000?"
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        earlier = await send(pilot, app, first)
        follow_up = await send(pilot, app, "and for the Perch?")
        line = json.dumps({"history": [{"role": "user", "text": first}, {"role": "agent", "text": earlier.text}],
                           "question": "and for the Perch?"})
        questions, histories = read_conversations(line, "conversations.jsonl")
        pipeline = AnswerPipeline(app.settings, app.session.kb, ScriptedBackend(reply))
        result = pipeline.ask(questions[0], histories[0]).run()
    from_cli = [(c.source, c.heading) for c in result.citations + result.other_hits]
    in_tui = [(c["source"], c["heading"]) for c in follow_up.data["citations"]]
    assert in_tui == from_cli
    assert follow_up.data["kind"] == result.kind


# -- the first index, still being built (issue 30, item 7) --------------------------------------


class FirstIndexEmbeddings(HashEmbeddings):
    """Holds the first index build (and only it) until the test lets it go; can make it fail."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.fail = False

    def embed_documents(self, texts):
        if threading.current_thread().name == "first-index":
            assert self.hold.wait(20), "test hold never released"
            if self.fail:
                raise RuntimeError("embedding model crashed (test)")
        return super().embed_documents(texts)


@pytest.fixture
def unindexed_app(settings_factory, small_kb):
    """An app on a KB that has no index yet: the first one is built behind the chat."""
    settings = settings_factory(small_kb)
    embedder = FirstIndexEmbeddings()
    kb = KnowledgeBase(settings, embedder=embedder)
    assert kb.snapshot() is None
    reply = ScriptedBackend("You can return it within 45 days of delivery [1].")
    app = SupportDeskApp(settings, session_factory=lambda s: SupportSession(s, backend=reply, kb=kb))
    return app, embedder


async def test_a_question_asked_while_the_first_index_is_built_waits_for_it(unindexed_app):
    app, embedder = unindexed_app
    async with app.run_test(size=(140, 30)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt").insert("How many days do I have to return a router?")
        await pilot.press("enter")
        await pilot.pause(1.2)
        view = app.query_one(ConversationView).answers()[-1]
        note = str(view.query_one("#note").render())
        assert "indexing the knowledge base…" in note and "%" in note and "answered when the index is in" in note
        assert "indexing the knowledge base…" in str(app.query_one("#status").render())
        assert app.session.history.messages(app.session.conversation_id) == []  # queued, not asked yet
        embedder.hold.set()
        view = await send(pilot, app, "")  # (nothing new: waits for the queued answer)
        assert view.data["kind"] == "grounded" and "45 days" in view.text
        assert "returned nothing" not in str(view.data.get("handoff_reason"))
        assert "indexing" not in str(app.query_one("#status").render())


async def test_a_question_waiting_for_a_first_index_that_fails_is_refused_with_the_reason(unindexed_app):
    app, embedder = unindexed_app
    async with app.run_test(size=(140, 30)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt").insert("How many days do I have to return a router?")
        await pilot.press("enter")
        await pilot.pause(0.6)
        embedder.fail = True
        embedder.hold.set()
        for _ in range(100):
            await pilot.pause(0.05)
            if app._ticket is None:
                break
        view = app.query_one(ConversationView).answers()[-1]
        assert view.data["kind"] == "error"
        note = str(view.query_one("#note").render())
        assert "not answered: the knowledge base could not be indexed" in note and "crashed" in note
        assert app.query_one("#prompt").text == "How many days do I have to return a router?"  # to send again


# -- a client of a team server (issue 30, items 6 and 17) ---------------------------------------


@pytest.fixture
def small_team(settings_factory, small_kb, hash_embedder, tmp_path):
    """A team server on the small KB (hashed embeddings): an agent and an admin."""
    from supportdesk.server.core import ServerCore

    settings = settings_factory(small_kb)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    core = ServerCore(settings, backend=ScriptedBackend("You can return it within 45 days of delivery [1]."), kb=kb)
    core.start()
    tokens = {name: core.tokens.create(name, role) for name, role in (("alice", "agent"), ("ada", "admin"))}
    client_settings = settings.model_copy(update={"data_dir": tmp_path / "client-data"})
    with running(core) as url:
        yield SimpleNamespace(url=url, core=core, tokens=tokens, settings=settings, kb_dir=small_kb,
                              client_settings=client_settings)
    core.close()


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def client_app(team, name: str, settings: Settings | None = None) -> SupportDeskApp:
    from supportdesk.client import session_factory

    return SupportDeskApp(settings or team.client_settings, session_factory(team.url, team.tokens[name]))


async def test_a_client_tui_never_builds_follows_or_switches_an_adapter_locally(small_team, tmp_path, monkeypatch):
    """With --server the app builds nothing on its machine: no background adapter build, no
    local build progress over the server's status, no switching the server's adapter."""
    from supportdesk.models.adapters import write_active
    from supportdesk.training.background import BuildStatus, pid_alive, write_status

    started: list[subprocess.Popen] = []

    def fake_start(*args, **kwargs):
        started.append(_sleeper())
        return started[-1].pid

    monkeypatch.setattr("supportdesk.training.background.start_sample_build", fake_start)
    settings = small_team.client_settings.model_copy(update={
        "tui": TUISettings(build_sample_adapter=True), "adapters_dir": tmp_path / "no-adapters"})
    local = _sleeper()  # an embedded app's build on this machine
    try:
        write_status(settings.data_dir, BuildStatus("kestrel-voice", "training", step=3, total=10, pid=local.pid))
        app = client_app(small_team, "alice", settings)
        switched: list[object] = []
        async with app.run_test(size=(160, 30)) as pilot:
            await ready(pilot, app)
            app.switch_worker = lambda backend, adapter: switched.append(adapter)
            await pilot.pause(1.3)
            assert started == [] and app._builder_pid is None
            assert "building adapter" not in str(app.query_one("#status").render())
            write_active(settings.data_dir, "kestrel-voice")
            write_status(settings.data_dir, BuildStatus("kestrel-voice", "done", step=10, total=10, pid=local.pid))
            await pilot.pause(1.3)
            assert switched == []
        assert pid_alive(local.pid)  # nor does quitting touch a local build
    finally:
        for process in (local, *started):
            process.kill()
            process.wait()


async def test_an_agents_reload_is_refused_with_the_servers_sentence(small_team):
    app = client_app(small_team, "alice")
    async with app.run_test(size=(140, 30)) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+r")
        for _ in range(100):
            await pilot.pause(0.05)
            if any("alice is an agent" in n.message for n in app._notifications):
                break
        refusal = [n for n in app._notifications if "alice is an agent" in n.message]
        assert refusal and refusal[0].severity == "error", [n.message for n in app._notifications]
        assert "reload" not in str(app.query_one("#status").render())


async def test_the_kb_updated_notice_names_who_reloaded(small_team):
    from supportdesk.client.remote import RemoteSession

    app = client_app(small_team, "alice")
    async with app.run_test(size=(140, 30)) as pilot:
        await ready(pilot, app)
        await pilot.pause(1.2)
        (small_team.kb_dir / "new-policy.md").write_text("# Loyalty points\n\nEvery purchase earns ten points.\n")
        ada = RemoteSession(small_team.settings, small_team.url, small_team.tokens["ada"])
        try:
            assert ada.reload_kb().ok
        finally:
            ada.close()
        for _ in range(60):
            await pilot.pause(0.1)
            if any(n.title == "KB updated" for n in app._notifications):
                break
        updated = [n.message for n in app._notifications if n.title == "KB updated"]
        assert updated and updated[0].endswith("reloaded by ada"), updated


def test_the_reconnect_line_counts_down_and_a_server_back_is_reconnected_at_once(settings_factory, small_kb,
                                                                               hash_embedder):
    from supportdesk.client.remote import RemoteSession
    from supportdesk.server.core import ServerCore

    settings = settings_factory(small_kb)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    core = ServerCore(settings, backend=ScriptedBackend("Hi [1]."), kb=kb)
    core.start()
    token = core.tokens.create("alice", "agent")
    with running(core) as url:
        port = int(url.rsplit(":", 1)[1])
        client = RemoteSession(settings, url, token)
        client.start()
    try:
        seen: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # down long enough for the backoff to reach its longest wait
            line = client.status().connection or ""
            seen.add(line)
            if "retrying in 7 s" in line:
                break
            time.sleep(0.1)
        assert "server unreachable — retrying in 8 s" in seen and "server unreachable — retrying in 7 s" in seen
        core.close()
        core = ServerCore(settings, backend=ScriptedBackend("Hi [1]."), kb=kb)
        core.start()
        with running(core, port=port):
            back = time.monotonic()
            while client.status().connection is not None and time.monotonic() - back < 10:
                time.sleep(0.05)
            assert client.status().connection is None
            assert time.monotonic() - back < 3.0  # not at the end of the 8 s wait
    finally:
        client.close()
        core.close()


# -- the insights screen (issue 28 part 3) ----------------------------------------------------


@pytest.fixture
def insights_app(sample_index, tmp_path):
    """An app whose history holds two fixed days of answers (every route, ratings, timings)."""
    from fixtures.insights_history import fill

    from supportdesk.history import HistoryStore

    base_settings, kb = sample_index
    settings = base_settings.model_copy(update={"data_dir": tmp_path / "insights"})
    store = HistoryStore(settings.data_dir / "history.sqlite3")
    fill(store)
    store.close()
    return SupportDeskApp(settings, session_factory=lambda s: SupportSession(s, backend=ScriptedBackend(grounded_reply),
                                                                             kb=kb))


async def _open_insights(pilot):
    from supportdesk.tui.screens.insights import InsightsScreen

    await _settle(pilot)
    await pilot.press("ctrl+g")
    for _ in range(400):
        await pilot.pause(0.05)
        screen = pilot.app.screen
        if isinstance(screen, InsightsScreen) and screen.report is not None:
            break
    await pilot.pause(0.3)


async def test_insights_screen_shows_the_figures_and_the_gaps(insights_app):
    from supportdesk.tui.screens.insights import InsightsScreen

    app = insights_app
    async with app.run_test(size=(140, 50)) as pilot:
        await _open_insights(pilot)
        screen = app.screen
        assert isinstance(screen, InsightsScreen) and screen.report is not None
        assert screen.report["total"]["questions"] == 7 and [d["day"] for d in screen.report["days"]] == [
            "2026-12-10", "2026-12-11"]
        assert [g["size"] for g in screen.report["gaps"]] == [2, 1]
        from rich.console import Console

        console = Console(width=40, record=True, file=io.StringIO())
        console.print(screen.query_one("#routes-numbers").content)
        numbers = console.export_text()
        assert "hand-off rate" in numbers and "29%" in numbers and "1 / 1" in numbers  # 2 of 7; 👍 / 👎
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert not isinstance(app.screen, InsightsScreen)


def test_snapshot_insights(snap_compare, insights_app, monkeypatch):
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    assert snap_compare(insights_app, terminal_size=(120, 45), run_before=_open_insights)
