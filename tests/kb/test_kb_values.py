"""The values in effect (fusion weight, hand-off, router) are resolved once per index generation and
kept on the snapshot: a search or an answer reads no file and resolves nothing; a reload does."""

from __future__ import annotations

import pathlib

import pytest

import supportdesk.kb.index as index_module
from supportdesk.answers import AnswerPipeline
from supportdesk.kb import KnowledgeBase
from supportdesk.kb.index import LABELLED_FILE
from supportdesk.kb.search import Searcher


@pytest.fixture
def spies(monkeypatch):
    """Counts: the labelled file touched on disk, values resolved, and the weights each search used."""
    seen = {"labelled": 0, "resolved": 0, "weights": []}
    for name in ("stat", "read_text", "read_bytes", "open"):
        real = getattr(pathlib.Path, name)

        def spy(self, *args, _real=real, **kwargs):
            if self.name == LABELLED_FILE:
                seen["labelled"] += 1
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, name, spy)
    real_resolve = getattr(index_module, "resolve", None)
    if real_resolve is not None:
        def resolve(*args, **kwargs):
            seen["resolved"] += 1
            return real_resolve(*args, **kwargs)

        monkeypatch.setattr(index_module, "resolve", resolve)
    real_dense_weight = KnowledgeBase.dense_weight

    def dense_weight(self, *args, **kwargs):  # the per-search resolution of the code before
        seen["resolved"] += 1
        return real_dense_weight(self, *args, **kwargs)

    monkeypatch.setattr(KnowledgeBase, "dense_weight", dense_weight)
    real_search = Searcher.search

    def search(self, *args, **kwargs):
        seen["weights"].append(kwargs["dense_weight"])
        return real_search(self, *args, **kwargs)

    monkeypatch.setattr(Searcher, "search", search)

    def reset():
        seen.update(labelled=0, resolved=0, weights=[])

    seen["reset"] = reset
    return seen


def test_searches_and_answers_read_the_values_of_their_generation(settings_factory, small_kb, hash_embedder, spies):
    (small_kb / LABELLED_FILE).write_text("[router]\ndense_weight = 0.55\nanswerability_weights = [1, 2, -1, 0]\n"
                                          "abstain_below = 0.4\n")
    settings = settings_factory(small_kb)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.reload().ok
    pipeline = AnswerPipeline(settings, kb, None)
    spies["reset"]()

    for question in ("How many days do I have to return a router?", "no internet connection", "refund"):
        kb.search(question)
        pipeline.plan(question)
    assert spies["labelled"] == 0 and spies["resolved"] == 0  # no file, no resolution, per question
    assert spies["weights"] and set(spies["weights"]) == {0.55}
    assert pipeline.answerability.threshold == 0.4
    values = kb.snapshot().values
    assert values.dense_weight.value == 0.55 and values.dense_weight.source == "labelled set"
    assert kb.values() is values

    # A new labelled value is not read by searches: a reload picks it up (nothing else changed).
    (small_kb / LABELLED_FILE).write_text("[router]\ndense_weight = 0.8\n")
    generation = kb.snapshot().generation
    spies["reset"]()
    kb.search("refund")
    assert spies["weights"] == [0.55] and spies["resolved"] == 0
    report = kb.reload()
    assert report.ok and report.generation == generation and spies["resolved"] == 1
    spies["reset"]()
    kb.search("refund")
    pipeline.plan("refund")
    assert set(spies["weights"]) == {0.8} and spies["labelled"] == 0 and spies["resolved"] == 0
    assert pipeline.answerability.threshold == settings.router.abstain_below  # the labelled pair is gone
    # kb stats shows the same object the searches use.
    assert kb.stats().in_use["dense_weight"] == {"value": 0.8, "from": "labelled set"}
    assert kb.values() is kb.snapshot().values

    # A new generation resolves again: here, its labelled file gone, the default.
    (small_kb / LABELLED_FILE).unlink()
    (small_kb / "extra.md").write_text("# Extra\n\nA page about refund windows for routers.\n")
    spies["reset"]()
    report = kb.reload()
    assert report.ok and report.generation != generation and spies["resolved"] == 1
    spies["reset"]()
    kb.search("refund")
    assert spies["weights"] == [settings.retrieval.default_dense_weight] and spies["labelled"] == 0
    assert kb.dense_weight() == (settings.retrieval.default_dense_weight, "default")
