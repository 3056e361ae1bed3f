"""``supportdesk answers`` and ``ask --json`` with approved answers (issue 28), real embedder, sample KB."""

from __future__ import annotations

import csv
import io
import json
import shutil

import pytest
from typer.testing import CliRunner

from supportdesk.cli import app

FAQ = [
    ("Do you offer student or military discounts?", "Yes: 15 % off with a verified student or military ID.", "disc"),
    ("Can I set up the router without the app?", "Yes: open http://192.168.50.1 in a browser and follow the steps.",
     "noapp"),
]


@pytest.fixture
def base(sample_index, tmp_path):
    """A copy of the sample KB's data dir (its index), so the history written here is this test's own."""
    settings, _ = sample_index
    data = tmp_path / "data"
    shutil.copytree(settings.data_dir, data, ignore=shutil.ignore_patterns("history.sqlite3*"))
    return ["--data-dir", str(data), "--kb", str(settings.kb_dir)]


def _run(base, *args, env=None):
    result = CliRunner().invoke(app, [*base, *args], env={"COLUMNS": "200", **(env or {})})
    return result


def test_import_ask_review_export_remove(base, tmp_path):
    good = tmp_path / "faq.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["question", "answer", "id", "sources"])
    for question, answer, key in FAQ:
        writer.writerow([question, answer, key, "faq.md"])
    good.write_text(buffer.getvalue(), encoding="utf-8")
    imported = _run(base, "answers", "import", str(good))
    assert imported.exit_code == 0, imported.output
    assert "imported 2 approved answer(s)" in imported.output

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "answer": "A."}) + "\n" + json.dumps({"answer": "no question"}) + "\n")
    refused = _run(base, "answers", "import", str(bad))
    assert refused.exit_code == 1 and "bad.jsonl, line 2: field 'question' is missing" in refused.output
    assert "Traceback" not in refused.output
    listed = [json.loads(line) for line in _run(base, "answers", "list", "--json").stdout.splitlines()]
    assert [a["key"] for a in listed] == ["disc", "noapp"]  # nothing of the bad file
    discounts = listed[0]["id"]

    asked = _run(base, "ask", "--json", "do you offer any student discounts?")
    assert asked.exit_code == 0, asked.output
    data = json.loads(asked.stdout)
    assert (data["kind"], data["approved_id"], data["answer"]) == ("approved", discounts, FAQ[0][1])
    assert data["approved_citation"].startswith(f"approved answer #{discounts} · ")
    assert [c["source"] for c in data["citations"]] == ["faq.md"]
    assert json.loads(_run(base, "answers", "show", str(discounts), "--json").stdout)["hits"] == 1
    shown = _run(base, "ask", "do you offer any student discounts?")
    assert "approved" in shown.output and f"approved answer #{discounts}" in shown.output

    # Below the threshold the pipeline answers as usual, with the close approved answers as suggestions.
    never = {"SUPPORTDESK_APPROVED__THRESHOLD": "1.0"}
    data = json.loads(_run(base, "ask", "--json", "student discount?", env=never).stdout)
    assert data["kind"] != "approved" and data["approved_id"] is None
    assert data["suggestions"][0]["answer_id"] == discounts and data["suggestions"][0]["text"] == FAQ[0][1]
    # An unrelated question gets neither.
    data = json.loads(_run(base, "ask", "--json", "How many devices can connect to the Wi-Fi?").stdout)
    assert data["kind"] != "approved" and data["suggestions"] == []

    proposed = _run(base, "answers", "propose", "--question", "Is the router waterproof?", "--text", "No, keep it dry.")
    assert proposed.exit_code == 0, proposed.output
    other = _run(base, "answers", "propose", "--question", "Free shipping?", "--text", "Always!")
    pending = [json.loads(line) for line in _run(base, "answers", "review", "--list", "--json").stdout.splitlines()]
    assert [p["question"] for p in pending] == ["Is the router waterproof?", "Free shipping?"]
    accepted = _run(base, "answers", "review", "--accept", str(pending[0]["id"]), "--text", "No: keep it indoors, dry.")
    assert accepted.exit_code == 0 and "accepted: approved answer #" in accepted.output
    assert _run(base, "answers", "review", "--reject", str(pending[1]["id"])).exit_code == 0
    again = _run(base, "answers", "review", "--reject", str(pending[1]["id"]))
    assert again.exit_code == 1 and "already rejected" in again.output
    assert other.exit_code == 0 and _run(base, "answers", "review", "--list").output.strip() == "no proposals wait for review"

    exported = _run(base, "answers", "export")
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [r["question"] for r in rows] == [q for q, _, _ in FAQ] + ["Is the router waterproof?"]
    (tmp_path / "back.csv").write_text(exported.stdout, encoding="utf-8")
    reimported = _run(base, "answers", "import", str(tmp_path / "back.csv"))
    assert "0 new, 3 updated" in reimported.output
    as_json = [json.loads(line) for line in _run(base, "answers", "export", "--json").stdout.splitlines()]
    assert [a["answer"] for a in as_json][-1] == "No: keep it indoors, dry."

    assert _run(base, "answers", "remove", str(discounts)).exit_code == 0
    gone = _run(base, "answers", "remove", str(discounts))
    assert gone.exit_code == 1 and f"no approved answer #{discounts}" in gone.output
    data = json.loads(_run(base, "ask", "--json", "do you offer any student discounts?").stdout)
    assert data["kind"] != "approved"


def test_review_at_the_prompt_accepts_edits_and_rejects(tmp_path):
    base = ["--data-dir", str(tmp_path / "data")]
    for question, text in (("Free shipping?", "Always!"), ("Is it waterproof?", "No."), ("Pay later?", "Sure.")):
        assert _run(base, "answers", "propose", "--question", question, "--text", text).exit_code == 0
    result = CliRunner().invoke(app, [*base, "answers", "review"], input="r\ne\nNo: keep it dry.\na\n")
    assert result.exit_code == 0, result.output
    assert "rejected" in result.output and "accepted as edited: approved answer #1" in result.output
    answers = [json.loads(line) for line in _run(base, "answers", "list", "--json").stdout.splitlines()]
    assert [(a["answer"], a["questions"][0]["question"]) for a in answers] == [
        ("No: keep it dry.", "Is it waterproof?"), ("Sure.", "Pay later?")]
    assert _run(base, "answers", "review").output.strip() == "no proposals wait for review"
    missing = _run(base, "answers", "show", "99")
    assert missing.exit_code == 1 and "no approved answer #99" in missing.output
