"""Approved answers in the history (issue 28 part 1): the tables on both engines, imports that land
whole or not at all, proposals reviewed once, hits counted, the import file checked line by line."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import psycopg
import pytest

from supportdesk.answers.importing import read_rows
from supportdesk.history import HistoryError, HistoryStore
from supportdesk.history.approved import ApprovedError, ImportRow


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])  # slow: starts a cluster
def store(request, tmp_path):
    if request.param == "sqlite":
        location = str(tmp_path / "h.sqlite3")
    else:
        postgres = request.getfixturevalue("postgres")
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(postgres.url, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        location = postgres.url.rsplit("/", 1)[0] + "/" + name
    opened = HistoryStore(location)
    yield opened
    opened.close()


def test_import_list_remove_and_hits_on_both_engines(store):
    approved = store.approved
    made = approved.import_rows([
        ImportRow("How long is the warranty?", "Two years from delivery.", "w1",
                  [{"source": "faq.md", "heading": "Warranty", "cited": True}], ["What's the warranty period?"]),
        ImportRow("Do you ship to Canada?", "Yes, in 5 to 8 days.", None),
    ], by="tess")
    assert [created for _, created in made] == [True, True]
    listed = approved.all()
    assert [a.answer for a in listed] == ["Two years from delivery.", "Yes, in 5 to 8 days."]
    first = listed[0]
    assert [q.question for q in first.questions] == ["How long is the warranty?", "What's the warranty period?"]
    assert {q.origin for q in first.questions} == {"import"}
    assert first.sources[0]["source"] == "faq.md" and first.approved_by == "tess" and first.key == "w1"
    assert first.citation().startswith(f"approved answer #{first.id} · tess · ")

    # The same file again updates the entry with that id instead of doubling it.
    again = approved.import_rows([ImportRow("How long is the warranty?", "Three years.", "w1")], by="tess")
    assert again == [(first.id, False)] and len(approved.all()) == 2
    assert approved.get(first.id).answer == "Three years."

    before = approved.signature()
    assert approved.add_question(first.id, "warranty how long", by="alice") is True
    assert approved.add_question(first.id, "warranty how long", by="alice") is False
    assert approved.signature() != before
    learned = approved.get(first.id).questions[-1]
    assert (learned.question, learned.origin, learned.created_by) == ("warranty how long", "suggestion-accepted", "alice")

    approved.record_hit(first.id)
    approved.record_hit(first.id)
    assert approved.get(first.id).hits == 2 and approved.get(first.id).last_hit is not None

    assert approved.remove(first.id) is True and approved.remove(first.id) is False
    assert approved.get(first.id) is None and [a.answer for a in approved.all()] == ["Yes, in 5 to 8 days."]
    with pytest.raises(ApprovedError, match="no approved answer"):
        approved.add_question(first.id, "gone?")


def test_a_failing_import_row_leaves_nothing_half_imported(store):
    approved = store.approved
    approved.add("Existing?", "Yes.", by="tess")
    with pytest.raises(HistoryError):  # the engine refuses the NOT NULL answer: the whole import rolls back
        approved.import_rows([ImportRow("Fine?", "Fine."), ImportRow("Broken?", None)], by="tess")  # type: ignore[arg-type]
    assert [a.answer for a in approved.all()] == ["Yes."]


def test_proposals_are_reviewed_once_and_keep_who_when_and_sources(store):
    approved = store.approved
    conversation = store.new_conversation()
    store.add_message(conversation, "user", "Can I return a used router?")
    draft_id = store.add_message(conversation, "assistant", "Returns are accepted [1].", kind="grounded",
                                 citations=[{"number": 1, "source": "returns.txt", "heading": "Returns", "cited": True},
                                            {"number": 0, "source": "other.md", "cited": False}])
    from supportdesk.answers.approved import SessionApproved

    proposal = SessionApproved(store, by="alice").propose(draft_id, "Yes, within 30 days, even if used [1].")
    pending = approved.proposals()
    assert [(p.id, p.question, p.draft, p.proposed_by, p.status) for p in pending] == [
        (proposal, "Can I return a used router?", "Returns are accepted [1].", "alice", "pending")]
    assert [s["source"] for s in pending[0].sources] == ["returns.txt"]  # only what the draft cited

    answer_id = approved.accept(proposal, by="tess", text="Yes, within 30 days, used or not [1].")
    accepted = approved.get(answer_id)
    assert accepted.answer == "Yes, within 30 days, used or not [1]." and accepted.approved_by == "tess"
    assert accepted.created_by == "alice" and [s["source"] for s in accepted.sources] == ["returns.txt"]
    assert [(q.question, q.origin) for q in accepted.questions] == [("Can I return a used router?", "proposal")]
    reviewed = approved.proposal(proposal)
    assert (reviewed.status, reviewed.reviewed_by, reviewed.answer_id) == ("accepted", "tess", answer_id)
    with pytest.raises(ApprovedError, match="already accepted by tess"):
        approved.reject(proposal, by="tom")

    other = approved.propose("Is it waterproof?", "No.", by="alice")
    approved.reject(other, by="tess")
    assert approved.proposals() == [] and [p.status for p in approved.proposals(None)] == ["accepted", "rejected"]
    with pytest.raises(ApprovedError, match="no proposal #999"):
        approved.accept(999, by="tess")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_files_csv_and_jsonl_and_their_errors_name_file_line_and_field(tmp_path):
    csv_file = _write(tmp_path, "a.csv", 'question,answer,id,sources\n"How long, really?",Two years.,w1,faq.md;terms.md\n'
                                         "What's the warranty period?,Two years.,w1,\nShip to Canada?,Yes.,,\n")
    rows = read_rows(csv_file)
    assert [(r.question, r.key, r.questions) for r in rows] == [
        ("How long, really?", "w1", ["What's the warranty period?"]), ("Ship to Canada?", None, [])]
    assert [s["source"] for s in rows[0].sources] == ["faq.md", "terms.md"]

    jsonl = _write(tmp_path, "b.jsonl", json.dumps({"question": "Q1?", "answer": "A1", "id": 7,
                                                    "sources": [{"source": "x.md", "heading": "H"}]}) + "\n\n"
                   + json.dumps({"question": "Q2?", "answer": "A2"}) + "\n")
    rows = read_rows(jsonl)
    assert [(r.question, r.key) for r in rows] == [("Q1?", "7"), ("Q2?", None)]

    cases = {
        ("c.jsonl", '{"question": "Q?", "answer": "A"}\n{"question": "Q2?"}\n'): "c.jsonl, line 2: field 'answer'",
        ("d.jsonl", '{"question": "Q?", "answer": "A"}\nnot json\n'): "d.jsonl, line 2: not JSON",
        ("e.csv", "question,reply\nQ?,A\n"): "e.csv, line 1: the header has no column 'answer'",
        ("f.csv", "question,answer\nQ?,A\n,B\n"): "f.csv, line 3: field 'question'",
        ("g.jsonl", '{"question": "Q?", "answer": "A", "sources": "[1,"}\n'): "g.jsonl, line 1: field 'sources'",
        ("h.jsonl", '{"question": "Q?", "answer": "A", "id": "k"}\n{"question": "R?", "answer": "B", "id": "k"}\n'):
            "h.jsonl, line 2: field 'answer' differs from line 1",
        ("i.txt", "question,answer\n"): "give a .csv or .jsonl file",
        ("j.csv", "question,answer\n"): "no rows",
    }
    for (name, text), message in cases.items():
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            read_rows(_write(tmp_path, name, text))


def test_history_migrate_copies_approved_answers_and_proposals_once(tmp_path, postgres):
    from supportdesk.history.migrate import migrate

    source = HistoryStore(tmp_path / "source.sqlite3")
    cid = source.new_conversation()
    source.add_message(cid, "user", "Can I return a used router?")
    draft = source.add_message(cid, "assistant", "Returns are accepted [1].", kind="grounded")
    approved = source.approved
    imported = approved.add("How long is the warranty?", "Two years.", by="tess", key="w1")
    approved.add_question(imported, "warranty length?", by="alice")
    approved.record_hit(imported)
    proposal = approved.propose("Can I return a used router?", "Yes, within 45 days.", by="alice", message_id=draft)
    accepted = approved.accept(proposal, by="tess")
    approved.propose("Is it waterproof?", "No.", by="alice")

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    target = HistoryStore(postgres.url.rsplit("/", 1)[0] + "/" + name)
    first = migrate(source, target)
    assert (first.approved_copied, first.proposals_copied) == (2, 2)
    again = migrate(source, target)
    assert (again.approved_copied, again.proposals_copied) == (0, 0)
    copied = {a.answer: a for a in target.approved.all()}
    assert [q.question for q in copied["Two years."].questions] == ["How long is the warranty?", "warranty length?"]
    assert copied["Two years."].hits == 1 and copied["Two years."].key == "w1"
    [reviewed] = [p for p in target.approved.proposals(None) if p.status == "accepted"]
    assert reviewed.answer_id == copied["Yes, within 45 days."].id and reviewed.reviewed_by == "tess"
    [copied_draft] = [m for c in target.conversations() for m in target.messages(c.id) if m.role == "assistant"]
    assert reviewed.message_id == copied_draft.id
    assert [p.question for p in target.approved.proposals()] == ["Is it waterproof?"]
    assert accepted != 0
    source.close()
    target.close()
