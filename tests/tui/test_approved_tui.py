"""The TUI with approved answers (issue 28), driven with Pilot over the real core: an agent edits a
draft and proposes it, a trainer accepts it in the review screen, the next similar question is
served with it (the 'approved' badge, no model call); a suggestion is sent with one key and learned."""

from __future__ import annotations

import pytest
from conftest import ScriptedBackend, grounded_reply, send

from supportdesk.session import SupportSession
from supportdesk.settings import Settings
from supportdesk.tui.app import SupportDeskApp
from supportdesk.tui.screens.approved import EditAnswerScreen, ReviewScreen

pytestmark = pytest.mark.slow

QUESTION = "Can I return my Kestrel router after 30 days?"
REWRITE = "Yes: you have 45 days from delivery; start the return in the Roost app."


async def _until(pilot, predicate, steps=200):
    for _ in range(steps):
        await pilot.pause(0.05)
        if predicate():
            return
    raise AssertionError("timed out")


async def ready(pilot, app) -> None:
    await _until(pilot, lambda: app.session is not None)


def _app(sample_index, tmp_path, **approved):
    base_settings, kb = sample_index
    settings = base_settings.model_copy(update={"data_dir": tmp_path / "data"})
    if approved:
        settings = settings.model_copy(update={"approved": settings.approved.model_copy(update=approved)})
    model = ScriptedBackend(grounded_reply)

    def factory(s: Settings) -> SupportSession:
        return SupportSession(s, backend=model, kb=kb)

    return SupportDeskApp(settings, session_factory=factory), model


async def test_edit_propose_approve_then_served_to_the_next_similar_question(sample_index, tmp_path):
    app, model = _app(sample_index, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        draft = await send(pilot, app, QUESTION)
        assert draft.data["kind"] != "approved"
        await pilot.press("f2")
        await _until(pilot, lambda: isinstance(app.screen, EditAnswerScreen))
        editor = app.screen.query_one("#approved-editor")
        assert editor.text == draft.text
        editor.text = REWRITE
        await pilot.press("ctrl+s")
        approved = app.session.history.approved
        await _until(pilot, lambda: len(approved.proposals()) == 1)
        assert approved.proposals()[0].question == QUESTION

        await pilot.press("f4")
        await _until(pilot, lambda: isinstance(app.screen, ReviewScreen) and app.screen.pending)
        await pilot.press("a")
        await _until(pilot, lambda: len(approved.all()) == 1)
        await pilot.press("escape")
        await _until(pilot, lambda: not isinstance(app.screen, ReviewScreen))

        prompts = len(model.prompts)
        served = await send(pilot, app, "can I return my kestrel router after 30 days")
        assert served.data["kind"] == "approved" and served.text == REWRITE
        assert str(served.query_one("#badge").render()).strip() == "approved"
        assert len(model.prompts) == prompts
        assert approved.all()[0].hits == 1


async def test_a_suggestion_is_sent_with_one_key_and_its_wording_learned(sample_index, tmp_path):
    app, _ = _app(sample_index, tmp_path, threshold=1.0)  # never served: offered as a suggestion
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        approved = app.session.history.approved
        answer_id = approved.add(QUESTION, REWRITE, by="tess")
        view = await send(pilot, app, "return my router after a month?")
        assert view.data["kind"] != "approved"
        assert view.data["suggestions"][0]["answer_id"] == answer_id
        assert f"approved answer #{answer_id}" in str(view.query_one(".note").render())
        await pilot.press("f3")
        await _until(pilot, lambda: "return my router after a month?" in
                     [q.question for q in approved.get(answer_id).questions])
        sent = app.query_one("#conversation").answers()[-1]
        assert sent.text == REWRITE and sent.data["kind"] == "approved"
        stored = app.session.history.messages(app.session.conversation_id)[-1]
        assert (stored.kind, stored.content) == ("approved", REWRITE)
