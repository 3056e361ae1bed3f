"""Self-calibration: pseudo-questions made from the KB, stored with the generation, and the
precedence of the values it measures (settings > the KB's labelled set > self-calibration)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from supportdesk.kb import KnowledgeBase
from supportdesk.kb.calibration import MIN_QUESTIONS, VERSION, Calibration, calibrate, pseudo_questions
from supportdesk.kb.chunking import Chunk
from supportdesk.kb.index import LABELLED_FILE


def chunk(source: str, heading: str, text: str, position: int = 0, title: str = "Guide") -> Chunk:
    return Chunk(f"{source}#{position}", text, source, title, heading, None, position)


def test_pseudo_questions_hide_their_own_words_and_skip_what_cannot_be_asked():
    body = "Hold the button on the back for ten seconds until the light blinks white, then wait two minutes."
    chunks = [
        chunk("a.md", "Guide > Factory reset the satellite", body, 0),
        chunk("a.md", "Guide > Factory reset the satellite", "Afterwards pair it again from the app settings page.", 1),
        chunk("b.md", "Overview", "This overview says what the guide holds and who it is written for. It lists the setup "
              "steps, the lights and their meanings, and where to get more help."),
        chunk("c.md", "Notes", "Short."),
    ]
    questions = pseudo_questions(chunks, seed=3)
    by_kind = {q.kind: q for q in questions}
    heading = by_kind["heading"]
    assert heading.text == "Factory reset the satellite" and heading.row == 0
    assert heading.siblings == (1,)  # the next chunk of the section still carries the heading
    assert "factory reset" not in heading.masked.lower() and "Hold the button" in heading.masked
    # A generic heading ("Overview") gives no question; its first sentence does, hidden from the chunk.
    assert by_kind["sentence"].row == 2 and by_kind["sentence"].text not in by_kind["sentence"].masked
    assert all(q.row != 3 for q in questions)  # nothing left to find "Short." by
    assert [q.text for q in pseudo_questions(chunks, seed=3)] == [q.text for q in questions]  # reproducible


def test_too_small_a_kb_keeps_the_defaults_and_says_why(hash_embedder):
    chunks = [chunk(f"{i}.md", f"Topic number {i}", "word " * 20 + f"unique{i}") for i in range(5)]
    vectors = np.asarray(hash_embedder.embed_documents([c.indexed_text for c in chunks]), dtype=np.float32)
    result = calibrate(chunks, vectors, hash_embedder.embed_documents, hash_embedder.embed_query,
                       default_weight=0.3, top_k=3, candidates=40)
    assert not result.calibrated and result.dense_weight is None
    assert f"need {MIN_QUESTIONS}" in result.reason and "defaults" in result.summary()


def test_build_stores_the_calibration_and_values_follow_the_precedence(settings_factory, hash_embedder, tmp_path):
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    topics = ["router lights", "refund window", "parental controls", "firmware update", "guest network",
              "port forwarding", "mesh pairing", "battery life", "sim activation", "speed test"]
    for i in range(40):
        topic = topics[i % len(topics)]
        (kb_dir / f"doc{i:02d}.md").write_text(
            f"# Handbook {i}\n\n## How to check {topic} case {i}\n\n"
            f"The {topic} item {i} needs step alpha{i} then step beta{i}. Confirm with gamma{i} in the app settings.\n"
        )
    on = {"self_calibrate": True}
    kb = KnowledgeBase(settings_factory(kb_dir, retrieval=on), embedder=hash_embedder)
    report = kb.reload()
    assert report.ok and report.calibration and "pseudo-questions" in report.calibration
    measured = kb.calibration()
    assert measured is not None and measured.calibrated and measured.questions >= MIN_QUESTIONS
    assert 0.0 <= measured.dense_weight <= 1.0 and set(measured.search) >= {"dense", "bm25", "default", "calibrated"}
    # Stored in the signed manifest: a fresh process reads it back.
    again = KnowledgeBase(settings_factory(kb_dir, retrieval=on), embedder=hash_embedder)
    assert again.calibration() == measured

    # Every section is titled by a question (a FAQ): the weight it chose serves by default; the
    # hand-off it fitted only when asked; neither when calibration is not applied.
    assert measured.weight_chosen and "question headings" in measured.weight_basis and measured.kinds["question"] >= 24
    assert kb.dense_weight() == (measured.dense_weight, "self-calibrated") and kb.handoff_model()[2] == "default"
    off = KnowledgeBase(settings_factory(kb_dir, retrieval={**on, "apply_calibration": False}), embedder=hash_embedder)
    assert off.dense_weight() == (0.3, "default")
    applied = KnowledgeBase(settings_factory(kb_dir, retrieval={**on, "apply_calibrated_handoff": True}),
                            embedder=hash_embedder)
    assert applied.dense_weight() == (measured.dense_weight, "self-calibrated")
    assert applied.handoff_model()[:2] == (measured.answerability_weights, measured.abstain_below)
    # The KB's labelled values win over self-calibration; settings you set win over both.
    (kb_dir / LABELLED_FILE).write_text("[router]\ndense_weight = 0.55\nanswerability_weights = [1, 2, -1, 0]\nabstain_below = 0.4\n")
    assert applied.dense_weight() == (0.55, "labelled set")
    assert applied.handoff_model() == ([1, 2, -1, 0], 0.4, "labelled set")
    explicit = KnowledgeBase(settings_factory(kb_dir, retrieval={"dense_weight": 0.9},
                                              router={"abstain_below": 0.2}), embedder=hash_embedder)
    assert explicit.dense_weight() == (0.9, "settings") and explicit.handoff_model()[1:] == (0.2, "settings")
    # The labelled file is never indexed (a dotfile), and a broken one is a warning, not a crash.
    assert all(f != LABELLED_FILE for f in kb.stats().in_use) and kb.stats().files == 40
    (kb_dir / LABELLED_FILE).write_text('[router]\nanswerability_weights = [1, "x"]\nabstain_below = 2\n')
    assert applied.handoff_model()[2] == "self-calibrated" and "must be 4 numbers" in applied.load_warning
    (kb_dir / LABELLED_FILE).write_text("[router\n")
    assert applied.dense_weight()[1] == "self-calibrated" and LABELLED_FILE in (applied.load_warning or "")


def test_a_manual_keeps_the_default_weight_and_says_why(settings_factory, hash_embedder, tmp_path):
    """Topic headings hidden from their sections chose weights that lost to the default on real
    questions about two manuals: only a KB titled by questions chooses its own weight."""
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    for i in range(40):
        (kb_dir / f"doc{i:02d}.md").write_text(
            f"# Manual {i}\n\n## Adjusting setting number {i}\n\n"
            f"Open menu{i} and choose option alpha{i}, then confirm with beta{i} in the settings screen of the device.\n")
    kb = KnowledgeBase(settings_factory(kb_dir, retrieval={"self_calibrate": True}), embedder=hash_embedder)
    assert kb.reload().ok
    measured = kb.calibration()
    assert measured is not None and measured.calibrated and not measured.weight_chosen
    assert measured.dense_weight == 0.3 and measured.weight_basis.startswith("default: 0 of 40 sections")
    assert kb.dense_weight() == (0.3, "default") and "0 of 40 sections" in measured.summary()


def test_small_change_keeps_the_calibration_and_kb_calibrate_makes_a_new_generation(cli, small_kb, monkeypatch):
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__SELF_CALIBRATE", "true")
    built = cli("kb", "build", "--json")
    assert built.exit_code == 0, built.output
    first = json.loads(built.stdout.strip().splitlines()[-1])
    assert first["calibration"] is not None  # a 4-file KB: measured, or "defaults (only N ...)"
    stats = json.loads(cli("kb", "stats", "--json").stdout)
    # faq.md is most of these four files' sections: the weight is this KB's own.
    assert stats["calibration"]["version"] == VERSION and stats["in_use"]["dense_weight"]["from"] == "self-calibrated"
    result = cli("kb", "calibrate", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["generation"] != first["generation"] and data["calibration"]["chunks"] == stats["chunks"]
    assert json.loads(cli("kb", "stats", "--json").stdout)["generation"] == data["generation"]
    # Nothing changed: a reload keeps serving the calibrated generation.
    assert json.loads(cli("kb", "build", "--json").stdout.strip().splitlines()[-1])["generation"] == data["generation"]


def test_calibration_json_of_another_version_is_ignored():
    assert Calibration.from_json({"version": 99, "status": "calibrated"}) is None
    assert Calibration.from_json("nonsense") is None
    restored = Calibration.from_json(Calibration(status="calibrated", dense_weight=0.4).to_json())
    assert restored is not None and restored.dense_weight == 0.4


@pytest.mark.slow
def test_sample_kb_keeps_its_labelled_values(sample_index):
    _settings, kb = sample_index
    assert kb.router_model()[2] == "labelled set" and kb.handoff_model()[2] == "labelled set"
    assert kb.router_examples() == []  # its router was fitted without them
    # Nothing would serve a self-calibration's values here, so the build skipped it (a first run
    # spends no CPU on it); on demand it still measures.
    assert kb.calibration() is None


def test_a_measured_hand_off_threshold_not_in_force_says_so() -> None:
    """`kb build` printed "hand-off below 0.41" while the labelled set's 0.62 served: it read as in force."""
    from supportdesk.kb.calibration import VERSION, Calibration

    measured = Calibration.from_json({"version": VERSION, "status": "calibrated", "questions": 280, "seconds": 80.0, "dense_weight": 0.3,
                                      "weight_basis": "default", "abstain_below": 0.4073,
                                      "search": {"calibrated": 0.35}, "handoff": {"answered": 0.91}})
    assert measured is not None
    assert "hand-off below 0.4073" in measured.summary(True)
    quiet = measured.summary(False)
    assert "not applied" in quiet and "apply_calibrated_handoff" in quiet and "hand-off below" not in quiet
