"""Question headings: a FAQ entry is also found by its question, its vectors travel with the
generation, and a KB that is not mostly a FAQ gets none."""

from __future__ import annotations

from pathlib import Path

from supportdesk.kb import KnowledgeBase
from supportdesk.kb.chunking import Chunk
from supportdesk.kb.questions import is_question, mostly_faq, question_of

FILLER = ("Our support team reviews every account on a rolling schedule and keeps records of each step "
          "taken, with notes added by the agent who handled it, for audits and future reference. ") * 3


def test_what_counts_as_a_question_heading():
    assert is_question("How do I change my Wi-Fi password?") and is_question("Can I mix Perch models")
    assert is_question("Router won't start?") and is_question("what's   the default address")
    assert not is_question("Changing the Picture Mode") and not is_question("Why") and not is_question("Howto guide")
    faq = Chunk("a#0", "text", "a.md", "FAQ", "FAQ > Billing > When will I get my refund?", None, 0)
    single = Chunk("b#0", "text", "b.md", "Is my data encrypted?", "", None, 0)
    topic = Chunk("c#0", "text", "c.md", "Manual", "Manual > Picture settings", None, 0)
    assert question_of(faq) == "When will I get my refund?" and question_of(single) == "Is my data encrypted?"
    assert question_of(topic) is None
    assert mostly_faq([faq, single, topic]) and not mostly_faq([faq, topic, Chunk("d#0", "t", "d.md", "D", "Setup", None, 0)])


def write_faq(kb_dir: Path) -> None:
    kb_dir.mkdir(parents=True, exist_ok=True)
    topics = ["refund", "warranty", "router lights", "guest network", "parental controls", "firmware", "modem",
              "mesh satellite", "speed test", "port forwarding"]
    for i, topic in enumerate(topics):
        (kb_dir / f"faq{i}.md").write_text(f"# How does the {topic} work?\n\nThe {topic} answer number {i} is here.\n")
    # The entry to find: its answer shares no word with the customer's question, its question does.
    (kb_dir / "cancel.md").write_text("# How do I cancel my subscription?\n\n" + FILLER + "Then press End plan.\n")
    # A distractor whose short body repeats two of the question's words.
    (kb_dir / "notes.md").write_text("# Plans\n\nSubscription cancel.\n")


def test_a_faq_entry_is_found_by_its_question_and_its_vectors_are_stored(settings_factory, hash_embedder, tmp_path):
    kb_dir = tmp_path / "kb"
    write_faq(kb_dir)
    query = "how do I cancel my subscription"
    plain = KnowledgeBase(settings_factory(kb_dir, retrieval={"question_weight": 0.0}), embedder=hash_embedder)
    assert plain.reload().ok
    assert plain.search(query, dense_weight=1.0).hits[0].chunk.source == "notes.md"
    assert "questions" not in plain.snapshot().manifest  # off: nothing embedded for it

    hash_embedder.embedded.clear()
    kb = KnowledgeBase(settings_factory(kb_dir, retrieval={"question_weight": 0.3}), embedder=hash_embedder)
    report = kb.reload()
    # Same files, but the generation lacked question vectors: a new one is written with them,
    # embedding the 11 questions and no chunk.
    assert report.ok and report.chunks_added == 0 and sorted(hash_embedder.embedded) == sorted(
        {q for q in (question_of(c) for c in kb.snapshot().searcher.chunks) if q})
    assert len(hash_embedder.embedded) == 11
    assert kb.stats().in_use["question_vectors"] == {"count": 11, "weight": 0.3}
    assert plain.stats().in_use["question_vectors"]["count"] == 0
    hits = kb.search(query, dense_weight=1.0).hits
    assert hits[0].chunk.source == "cancel.md"
    # A hit's score is still its own cosine: the question only changed the order.
    assert abs(hits[0].score - float(kb.snapshot().searcher._cosine(
        kb.search(query).vector, kb.snapshot().searcher._row_of[hits[0].chunk.id]))) < 1e-6
    # Dense-only mode is the chunk vectors alone (the question vectors belong to the hybrid).
    assert kb.search(query, mode="dense").hits[0].chunk.source == "notes.md"

    # A fresh process reads them from the signed manifest: nothing embedded on load.
    hash_embedder.embedded.clear()
    again = KnowledgeBase(settings_factory(kb_dir, retrieval={"question_weight": 0.3}), embedder=hash_embedder)
    assert again.search(query, dense_weight=1.0).hits[0].chunk.source == "cancel.md" and hash_embedder.embedded == []

    # One entry edited: only its chunk and its new question are embedded; the others are reused.
    (kb_dir / "faq0.md").write_text("# How does the refund window work?\n\nThirty days from delivery.\n")
    hash_embedder.embedded.clear()
    edited = again.reload()
    assert edited.chunks_added == 1 and len(hash_embedder.embedded) == 2
    assert "How does the refund window work?" in hash_embedder.embedded


def test_a_kb_that_is_mostly_manuals_gets_no_question_vectors(settings_factory, hash_embedder, tmp_path):
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    (kb_dir / "faq.md").write_text("# FAQ\n\n## How do I cancel my subscription?\n\nPress End plan.\n")
    for i in range(3):
        (kb_dir / f"manual{i}.md").write_text(f"# Manual {i}\n\n## Setting up part {i}\n\nPlug in cable {i}.\n")
    kb = KnowledgeBase(settings_factory(kb_dir, retrieval={"question_weight": 0.3}), embedder=hash_embedder)
    assert kb.reload().ok and "questions" not in kb.snapshot().manifest
    assert kb.snapshot().searcher.questions is None
