"""Issue 28: every approved answer is training data, and nothing unrated or unapproved is."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.history import HistoryStore
from supportdesk.training.prepare import load_split


def _history(data):
    store = HistoryStore(data / "history.sqlite3")
    cid = store.new_conversation()
    store.add_message(cid, "user", "How do I pair a new Perch?")
    store.add_message(cid, "assistant", "Perch to Perch, mesh to mesh, the roost is yours!", kind="voice")  # unrated
    store.add_message(cid, "user", "and how long does it take?")
    good = store.add_message(cid, "assistant", "Pairing takes about two minutes [1].", kind="grounded")
    store.add_message(cid, "user", "thanks")
    bad = store.add_message(cid, "assistant", "No worries mate!!!", kind="voice")
    store.set_feedback(good, 1)
    store.set_feedback(bad, -1)
    approved = store.approved
    approved.add("Do you ship to Canada?", "Yes: 5 to 8 business days.", by="tess")
    approved.add_question(approved.all()[0].id, "canada shipping?", by="alice")
    approved.propose("Is it waterproof?", "Totally waterproof, swim with it!", by="alice")  # pending: not approved
    rejected = approved.propose("Can I pay later?", "Sure, pay whenever.", by="alice")
    approved.reject(rejected, by="tess")
    store.close()


def _learned(runner, data, exported, tmp_path, name):
    prepared = runner.invoke(app, ["--data-dir", str(data), "adapter", "prepare", str(exported), "--out",
                                   str(tmp_path / name), "--eval-fraction", "0.05"])
    assert prepared.exit_code == 0, prepared.output
    return [m["content"] for split in ("train", "eval") for conv in load_split(tmp_path / name / f"{split}.jsonl")
            for m in conv if m["role"] == "assistant"]


def test_a_whole_history_export_never_teaches_an_unrated_reply(tmp_path):
    """Before: 'history export' (without --rated-good) wrote every reply as an agent turn, and 'adapter
    prepare' learned the unrated "Perch to Perch…" and the 👎 reply from it."""
    data = tmp_path / "data"
    _history(data)
    runner = CliRunner()
    exported = tmp_path / "all.jsonl"
    result = runner.invoke(app, ["--data-dir", str(data), "history", "export", "-o", str(exported)])
    assert result.exit_code == 0, result.output
    learned = _learned(runner, data, exported, tmp_path, "all")
    assert learned == ["Pairing takes about two minutes [1]."]


def test_rated_good_export_holds_approved_answers_and_no_proposal_waiting_or_rejected(tmp_path):
    data = tmp_path / "data"
    _history(data)
    runner = CliRunner()
    exported = tmp_path / "good.jsonl"
    result = runner.invoke(app, ["--data-dir", str(data), "history", "export", "--rated-good", "-o", str(exported)])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in exported.read_text(encoding="utf-8").splitlines()]
    approved = [r for r in records if r["metadata"]["source"] == "supportdesk-approved"]
    assert [r["messages"] for r in approved] == [
        [{"role": "user", "content": "Do you ship to Canada?"},
         {"role": "assistant", "content": "Yes: 5 to 8 business days."}],
        [{"role": "user", "content": "canada shipping?"},
         {"role": "assistant", "content": "Yes: 5 to 8 business days."}]]
    text = exported.read_text(encoding="utf-8")
    for never in ("Perch to Perch", "No worries", "waterproof", "pay whenever"):
        assert never not in text
    learned = _learned(runner, data, exported, tmp_path, "good")
    assert set(learned) == {"Pairing takes about two minutes [1].", "Yes: 5 to 8 business days."}
