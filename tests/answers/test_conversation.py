"""Conversations: follow-ups stay on topic and route, under-specified questions are clarified,
every supported sentence carries its source, and ``ask --conversations`` answers turn by turn."""

from __future__ import annotations

import json

import pytest
from conftest import SAMPLE_KB, ScriptedBackend
from typer.testing import CliRunner

from supportdesk.answers import AnswerPipeline
from supportdesk.answers import citations as cite
from supportdesk.answers.conversation import (
    Turn,
    ambiguity,
    follow_up_query,
    is_follow_up,
    named_instances,
    title_heads,
    unresolved_reference,
)
from supportdesk.cli import app
from supportdesk.cli.ask import read_conversations

RETURN = [Turn("user", "How do I return a router?"),
          Turn("assistant", "Start a return in Roost [1].", route="grounded", headings=("Returns > Start a return",))]


def test_what_counts_as_a_follow_up():
    assert is_follow_up("Are those the only steps?", RETURN)
    assert is_follow_up("They sound similar in function.", RETURN)
    assert is_follow_up("Pagination options", RETURN)  # a fragment continues the topic
    assert not is_follow_up("thanks!", RETURN)  # small talk is not
    assert not is_follow_up("Are those the only steps?", [])  # nothing to follow
    assert not is_follow_up("What does error KE-404 on my Aerie router mean?", RETURN)  # names its own subject
    assert not is_follow_up("I would like to know how the warranty for the Talon gateway differs between the "
                            "countries where you sell it", RETURN)
    # Searched with the previous question and the heading the last answer cited.
    assert follow_up_query("and the refund?", RETURN) == "How do I return a router? Start a return and the refund?"


def test_unresolved_references():
    assert unresolved_reference("What are the services offered by this state library?", []) == "this state library"
    assert unresolved_reference("Does this Superior Court publish a judges roster?", []) == "this Superior Court"
    history = [Turn("user", "Tell me about the Monterey Park library")]
    assert unresolved_reference("What are the hours of this library?", history) is None  # named before
    assert unresolved_reference("Is this a good idea?", []) is None  # "this" alone points at no noun
    assert unresolved_reference("my router got hit by lightning, is that covered?", []) is None  # a participle
    assert unresolved_reference("That sounds hard. What now?", []) is None
    # "the clinic" is under-specified in a KB where several documents are each a clinic ...
    titles = ["Causeway VA Clinic | VA Boston", "North Coast VA Clinic", "Lyle C. Pearson Outpatient Clinic - VA",
              "Clinic hours and the name of the game"]
    assert title_heads(titles[0]) == {"clinic", "boston"}
    assert unresolved_reference("What services does the clinic provide?", [], titles) == "the clinic"
    # ... not when the conversation named it, and not for a word the titles merely mention.
    assert unresolved_reference("What services does the clinic provide?", [Turn("user", "Causeway clinic?")], titles) is None
    assert unresolved_reference("What is the name of our galaxy?", [], titles) is None


def test_every_supported_sentence_gets_its_source_marker():
    sources = {1: "Returns are accepted within 45 days of delivery.", 2: "The Talon battery lasts about 6 hours."}
    report = cite.check("Returns are accepted within 45 days of delivery. The Talon battery lasts 6 hours [2]. "
                        "Thanks for asking!", sources, 0.5)
    text, added = cite.add_missing_markers(report)
    assert added == 1
    assert text == "Returns are accepted within 45 days of delivery [1]. The Talon battery lasts 6 hours [2]. Thanks for asking!"
    assert report.sentences[0].markers == [1]
    unsupported = cite.check("The moon is made of cheese.", sources, 0.5)
    assert cite.add_missing_markers(unsupported) == ("The moon is made of cheese.", 0)


def test_read_conversations_names_the_bad_line_and_field():
    questions, histories = read_conversations(
        '{"history": [{"role": "user", "text": "hi"}, {"role": "agent", "text": "hello"}], "question": "and?"}\n\n'
        '{"question": "alone"}\n', "turns.jsonl")
    assert questions == ["and?", "alone"] and [t.role for t in histories[0]] == ["user", "assistant"]
    assert histories[1] == []
    for bad, problem in (("{oops", "line 1: not JSON"), ('{"history": []}', "field 'question'"),
                         ('{"question": "q", "history": [{"role": "robot", "text": "x"}]}', r"history\[0\] needs 'role'")):
        with pytest.raises(ValueError, match=problem):
            read_conversations(bad, "turns.jsonl")


@pytest.mark.slow
def test_follow_up_after_a_grounded_answer_stays_grounded_and_on_topic(sample_index):
    settings, kb = sample_index
    backend = ScriptedBackend("Refunds are issued within 5 business days of inspection.")
    pipeline = AnswerPipeline(settings, kb, backend)
    followed = pipeline.plan("Are those the only steps?", RETURN)
    assert followed.follow_up and followed.kind == "grounded" and "return a router" in followed.query
    # A router that would send it to brand voice: the conversation keeps it grounded, and says so.
    from supportdesk.router import Router

    chatty = AnswerPipeline(settings, kb, backend, router=Router(kb.embedder.embed_documents, [0, 0, 0, 0], 0.99))
    assert chatty.plan("Are those the only steps?", []).kind == "voice"
    kept = chatty.plan("Are those the only steps?", RETURN)
    assert kept.kind == "grounded" and kept.decision.reason.startswith("follow-up of an answer from the docs")
    assert chatty.plan("thanks, bye!", RETURN).kind == "voice"  # small talk is not a follow-up
    # A history from elsewhere (no routes recorded): the previous question is routed again.
    bare = [Turn("user", "How do I return a router?"), Turn("assistant", "Start a return in Roost.")]
    assert pipeline.plan("Are those the only steps?", bare).kind == "grounded"
    result = pipeline.ask("and when do I get the refund?", RETURN).run()
    assert result.follow_up and result.kind == "grounded"
    assert result.answer.endswith("]") or "[" in result.answer or result.fallback == "extractive"


@pytest.mark.slow
def test_under_specified_question_gets_a_clarifying_question(sample_index):
    settings, kb = sample_index
    backend = ScriptedBackend("should not be used")
    result = AnswerPipeline(settings, kb, backend).ask("How do I reset this device?").run()
    assert result.kind == "clarify" and backend.prompts == []
    assert result.answer.startswith("Which device do you mean?") and "this device" in result.clarify_reason
    assert result.to_json()["route"] == "grounded" and result.kind == "clarify"
    named = AnswerPipeline(settings, kb, backend).plan("How do I reset this device?", [Turn("user", "My Perch device blinks red")])
    assert named.kind != "clarify"


@pytest.mark.slow
def test_ask_conversations_prints_one_json_line_per_turn(sample_index, tmp_path, monkeypatch):
    import supportdesk.cli.ask as ask_module

    settings, kb = sample_index
    monkeypatch.setattr(ask_module, "build_pipeline",
                        lambda appctx, backend=None, adapter=None: AnswerPipeline(settings, kb, ScriptedBackend("Sure thing!")))
    path = tmp_path / "turns.jsonl"
    path.write_text(
        json.dumps({"history": [], "question": "How do I return a router?"}) + "\n"
        + json.dumps({"history": [{"role": "user", "text": "How do I return a router?"},
                                  {"role": "agent", "text": "Start a return in Roost."}],
                      "question": "Are those the only steps?"}) + "\n"
        + json.dumps({"history": [], "question": "   "}) + "\n"
    )
    result = CliRunner().invoke(app, ["--kb", str(SAMPLE_KB), "ask", "--conversations", str(path), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == 3 and lines[1]["route"] == "grounded" and "return a router" in lines[1]["query"]
    assert {"clarify_reason", "markers_added", "citations", "timings"} <= set(lines[0]) and "error" in lines[2]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": 5}\n')
    refused = CliRunner().invoke(app, ["--kb", str(SAMPLE_KB), "ask", "--conversations", str(bad), "--json"])
    assert refused.exit_code != 0 and "line 1" in refused.output and "Traceback" not in refused.output


def _search(*titles: str):
    from supportdesk.kb.chunking import Chunk
    from supportdesk.kb.search import SearchHit, SearchResult

    hits = [SearchHit(Chunk(f"d{i}", "text", f"d{i}.md", t, t, None, 0), 0.6 - i / 100, 0.0) for i, t in enumerate(titles)]
    return SearchResult("q", hits)


def test_clarify_only_when_the_readings_name_different_things():
    """'the TV' in one TV's manual is the TV; 'the court' in a KB of many courts is not."""
    manual = ["Turning on the TV with a mobile device", "Connecting the Samsung Smart Remote to the TV",
              "About the Samsung Smart Remote (QLED TV)", "About the Samsung Smart Remote (UHD TV)", "Using Smart Hub",
              "Smart Hub", "Read After Installing the TV"]
    assert named_instances("Turning on the TV") == {} and named_instances("Using Smart Hub") == {"hub": "smart hub"}
    asked = "Can I turn on the TV with a mobile device?"
    assert ambiguity(asked, [], _search(*manual[:3]), manual) is None
    assert ambiguity("What is the source option in the Smart Hub?", [], _search("Using Smart Hub", "Smart Hub"), manual) is None
    assert ambiguity("Where do I check the list of my channels?", [], _search("Using the Channel List"), manual) is None
    courts = ["Juror fees | Superior Court of California | County of Ventura", ("Small Claims | Superior Court of California"
              " | County of Tuolumne"), "Sacramento Superior Court", "Jury duty | Superior Court of California | County of Kern"]
    unclear = ambiguity("Does the Superior Court publish a judges roster?", [], _search(*courts[:3]), courts)
    assert unclear is not None and len(unclear.options) == 3
