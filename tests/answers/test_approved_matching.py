"""The approved-answer matcher and its evaluation (issue 28): what is served, what is suggested, and
the figures ``eval-approved`` prints, on a small set whose outcome is known."""

from __future__ import annotations

import numpy as np

from supportdesk.answers.approved import ApprovedMatcher, Entry, confidence
from supportdesk.evaluation import approved as evaluation

ENTRIES = [
    Entry(1, "Two years from delivery.", ["How long is the warranty?"]),
    Entry(2, "Yes, in 5 to 8 days.", ["Do you ship to Canada?"]),
    Entry(3, "Hold the reset button for ten seconds.", ["How do I factory reset the router?"]),
]


def test_served_above_the_threshold_suggested_below_nothing_for_an_unrelated_question(hash_embedder):
    matcher = ApprovedMatcher(hash_embedder.embed_documents, threshold=0.9, suggest_floor=0.3, min_score=0.5)
    matcher.build(ENTRIES)
    exact = matcher.match("How long is the warranty?")
    assert exact.answer_id == 1 and exact.suggestions == [] and exact.confidence >= 0.9
    matcher.threshold = 1.0  # nothing is served: the close entries are suggested
    close = matcher.match("warranty how long?")
    assert close.answer_id is None and [s.answer_id for s in close.suggestions] == [1]
    assert close.suggestions[0].question == "How long is the warranty?"
    matcher.threshold = 0.9
    unrelated = matcher.match("zebra quantum marmalade")
    assert unrelated.answer_id is None and unrelated.suggestions == []
    # A wording an agent accepted is matched like the entry's own question.
    matcher.build([Entry(1, ENTRIES[0].answer, ENTRIES[0].questions, ["warranty length for my router"]), *ENTRIES[1:]])
    assert matcher.match("warranty length for my router").answer_id == 1
    # However confident the margins, an entry under min_score is not served.
    strict = ApprovedMatcher(hash_embedder.embed_documents, threshold=0.0, suggest_floor=0.0, min_score=1.01)
    strict.build(ENTRIES)
    assert strict.match("How long is the warranty?").answer_id is None
    assert 0.0 < confidence((0.5, 0.1, 0.1, 0.1, 0.2, 0.3)) < 1.0


def test_the_evaluation_reports_on_one_half_with_the_other_half_learned(hash_embedder):
    questions = [(f"q{i:03d}", text, frozenset({gold})) for i, (text, gold) in enumerate([
        ("how long is the warranty", "1"), ("warranty how long", "1"), ("warranty period please", "1"),
        ("ship to canada", "2"), ("do you ship to canada", "2"), ("canada shipping", "2"),
        ("factory reset the router", "3"), ("how to reset router", "3"), ("reset router factory", "3"),
        ("warranty for canada", "2"),
    ])]
    data = evaluation._Data(ENTRIES, questions, [("social_dev", "s1", "hello there"), ("social_dev", "s2", "bye")])
    assert evaluation.half_of("q001") == evaluation.half_of("q001")
    report = evaluation.report("b", 0.5, 0.2, data=data, embed=hash_embedder.embed_documents, timing_sample=3)
    rows = [q for q in questions if evaluation.half_of(q[0]) == "b"]
    assert report.questions == len(rows) and report.served >= report.served_wrong
    assert report.wrong_share == (round(report.served_wrong / report.served, 4) if report.served else 0.0)
    assert 0.0 <= report.served_right_share <= report.right_in_three <= 1.0
    assert set(report.off_domain) == {"social_dev"} and report.latency_ms_p50 > 0
    calibration = evaluation.calibrate("a", data, embed=hash_embedder.embed_documents)
    assert 0.0 <= calibration.threshold <= 1.0 and len(calibration.coef) == 7
    # The report holds the three states of learning; the calibration checked its threshold in the same three.
    assert {"served", "wrong_share", "served_right_share"} <= set(report.quarter) and report.static
    each = report.quarter["each"]  # each quarter of the other half learned in turn, pooled
    assert len(each) == 4 and report.quarter["served"] == sum(q["served"] for q in each)
    assert report.quarter["served_wrong"] == sum(q["served_wrong"] for q in each)
    assert list(calibration.states) == list(evaluation.STATES)
    for figures in calibration.states.values():
        assert figures["wrong_share"] <= evaluation.WRONG_MAX


def test_learned_wordings_vote_and_a_crowded_neighbourhood_is_not_served(hash_embedder):
    """Two entries near the question: the one several learned wordings agree on outranks one with a single
    slightly closer wording; and the same question is less confident when the other entry's wordings crowd
    its neighbourhood than when the entry owns it."""
    matcher = ApprovedMatcher(hash_embedder.embed_documents, threshold=0.0, suggest_floor=0.0, min_score=0.0)
    question = "router blinking red light"
    one = Entry(1, "Restart it.", ["modem question"], ["router blinking red light again"])
    many = Entry(2, "Call us.", ["modem issue"], ["router blinking red light now", "router blinking red light today",
                                                  "router blinking red light still"])
    cosines = [float(np.dot(*hash_embedder.embed_documents([question, t]))) for t in (*one.learned, *many.learned)]
    assert cosines[0] >= max(cosines[1:])  # entry 1's one wording is at least as close as any of entry 2's
    matcher.build([one, many])
    assert matcher.match(question).ranked[0] == 2
    # Owned: only entry 1's wordings near the question. Crowded: entry 2 learned wordings close to it too.
    owned = ApprovedMatcher(hash_embedder.embed_documents)
    owned.build([Entry(1, "Restart it.", ["router blinking red light"], ["router blinking red light again"]),
                 Entry(2, "Call us.", ["what are your opening hours"])])
    crowded = ApprovedMatcher(hash_embedder.embed_documents)
    crowded.build([Entry(1, "Restart it.", ["router blinking red light"], ["router blinking red light again"]),
                   Entry(2, "Call us.", ["what are your opening hours"], ["router blinking light red colour",
                                                                          "red light router blinking fast"])])
    a, b = owned.match("router blinking red light now"), crowded.match("router blinking red light now")
    assert a.ranked[0] == b.ranked[0] == 1
    assert len(a.features) == 6 and a.features[4] > b.features[4] and a.features[5] > b.features[5]
    assert a.confidence > b.confidence


def test_leave_one_out_hides_only_the_asked_wording(hash_embedder):
    """The calibration asks each question of its half with all the half learned but its own wording."""
    matcher = ApprovedMatcher(hash_embedder.embed_documents)
    wording = "warranty length for my router"
    matcher.build([Entry(1, ENTRIES[0].answer, ENTRIES[0].questions, [wording]), *ENTRIES[1:]])
    found, hidden = matcher.match(wording), matcher.match(wording, leave_out=wording)
    assert found.features[0] > hidden.features[0] and found.ranked[0] == 1
    assert matcher.match("How long is the warranty?", leave_out="How long is the warranty?").features[0] == \
        matcher.match("How long is the warranty?").features[0]  # an imported question is never hidden


def test_a_history_out_of_reach_never_fails_the_question(hash_embedder):
    from supportdesk.answers.approved import ApprovedService
    from supportdesk.history import HistoryError
    from supportdesk.settings import ApprovedSettings

    class Store:
        down = False

        def signature(self):
            if self.down:
                raise HistoryError("the history database is unreachable")
            return ("v1",)

        def all(self):
            from supportdesk.history.approved import ApprovedAnswer, ApprovedQuestion

            return [ApprovedAnswer(1, "Two years.", questions=[ApprovedQuestion(1, "How long is the warranty?", "import")])]

        def record_hit(self, answer_id):
            self.hit = answer_id

    store = Store()
    service = ApprovedService(lambda: store, hash_embedder.embed_documents, ApprovedSettings(min_score=0.0))
    service.warm_up()
    store.down = True
    _, served = service.match("How long is the warranty?")
    assert served is not None and served.answer == "Two years." and store.hit == 1
