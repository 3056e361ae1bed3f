"""The public-set readers and scorers behind ``supportdesk eval-public`` (../shared/datasets)."""

from __future__ import annotations

import pytest
from conftest import SHARED

from supportdesk.evaluation import datasets
from supportdesk.evaluation.retrieval import first_gold_rank, score

needs_sets = pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared/datasets is not beside the project")


@needs_sets
def test_readers_match_the_dataset_readmes(tmp_path):
    faq = datasets.faq_retrieval()
    assert len(faq.documents) == 68 and len(faq.questions) == 1037
    assert all(q.gold for q in faq.questions)
    manual = datasets.emanual()
    assert len(manual.documents) == 261 and all(len(q.gold) == 1 for q in manual.questions)
    mtrag = datasets.mtrag_dev()
    assert len(mtrag.questions) == 157 and len(mtrag.documents) == 497
    assert all(len(q.history) == 2 * (q.turn - 1) for q in mtrag.questions)
    assert {q.answerability for q in mtrag.questions} == {"ANSWERABLE", "PARTIAL", "UNANSWERABLE", "UNDERSPECIFIED"}
    assert all(not q.gold for q in mtrag.questions if q.answerability in ("UNANSWERABLE", "UNDERSPECIFIED"))
    files = faq.write_kb(tmp_path / "kb")
    assert len(files) == 68 and (tmp_path / "kb" / "doc00000.md").read_text().startswith("# What is COVID-19?")


def test_a_bad_line_names_file_and_line(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"id": "1", "question": "q", "answer": "a"}\n{broken\n')
    (tmp_path / "queries.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"corpus.jsonl, line 2: not JSON"):
        datasets.faq_retrieval(tmp_path)
    with pytest.raises(FileNotFoundError, match="shared/datasets"):
        datasets.emanual(tmp_path / "nowhere")


def test_scores():
    assert first_gold_rank(["a", "b", "c"], ("c", "x")) == 3 and first_gold_rank(["a"], ("z",)) is None
    row = score("x", [1, 2, None, 11])
    assert (row.hit1, row.hit5) == (0.25, 0.5) and row.mrr == pytest.approx((1 + 0.5) / 4)


@needs_sets
@pytest.mark.slow
def test_faq_retrieval_rows_with_self_calibration():
    from supportdesk.evaluation.retrieval import evaluate_retrieval

    faq = datasets.faq_retrieval()
    rows, info = evaluate_retrieval(faq, faq.questions[:120])
    names = [r.name for r in rows]
    assert names[:3] == ["dense", "bm25", "hybrid, default weight 0.3"] and names[3].startswith("hybrid, self-calibrated")
    assert info["calibration"]["status"] == "calibrated" and info["chunks"] >= 68
    assert all(0 <= r.hit1 <= r.hit5 <= 1 and 0 <= r.mrr <= 1 and r.n == 120 for r in rows)
