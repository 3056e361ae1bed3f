"""The answer-measuring instruments: the labelled fact set, fact scoring, text measures, eval-answers."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from conftest import ROOT, SAMPLE_KB, ScriptedBackend
from typer.testing import CliRunner

from supportdesk.evaluation import answer_quality as quality
from supportdesk.evaluation.facts import (
    TYPES,
    VERDICTS,
    by_half,
    fact_figures,
    load_fact_set,
    normalise,
    score_answer,
    values,
    verify_set,
)
from supportdesk.evaluation.scoring import token_f1

FACT_SET = ROOT / "eval" / "fact_set.jsonl"


@pytest.fixture(scope="module")
def facts():
    return {item.id: item for item in load_fact_set(FACT_SET)}


def item_about(facts, fact_id: str, *words: str):
    """The set's item ``fact_id``, checked to still be the question the test means."""
    item = facts[fact_id]
    assert all(w.lower() in item.question.lower() for w in words), (fact_id, item.question)
    return item


# -- the set itself ---------------------------------------------------------------------------


def test_fact_set_loads_and_every_fact_is_in_its_source(facts):
    items = list(facts.values())
    assert len(items) >= 80
    assert verify_set(items, SAMPLE_KB) == []  # fact in the source (hard wraps joined), reference sound
    assert {item.type for item in items} <= set(TYPES)
    assert len({item.question for item in items}) == len(items)
    folders = {item.source.split("/")[0] for item in items}
    kb_folders = {p.name for p in SAMPLE_KB.iterdir() if p.is_dir()} | {"faq.md"}
    assert kb_folders <= folders, kb_folders - folders  # every folder of the KB, and the FAQ
    for folder in folders:  # each folder in both halves, balanced
        halves = Counter(item.half for item in items if item.source.split("/")[0] == folder)
        assert abs(halves["a"] - halves["b"]) <= 1, (folder, halves)
    assert sum(bool(item.wrong) for item in items) >= 0.9 * len(items)


def test_verify_set_finds_a_fact_the_source_does_not_state(tmp_path, facts):
    row = facts["f042"].to_json() | {"fact": r"\$\s?17\b"}
    (tmp_path / "set.jsonl").write_text(json.dumps(row) + "\n")
    problems = verify_set(load_fact_set(tmp_path / "set.jsonl"), SAMPLE_KB)
    assert any("does not match pricing/pricing-and-plans.html" in p for p in problems)
    assert any("field 'answer' does not state the fact" in p for p in problems)
    row = facts["f042"].to_json() | {"wrong": [r"\$\s?19\b"]}
    (tmp_path / "set.jsonl").write_text(json.dumps(row) + "\n")
    assert any("matches the reference answer" in p for p in verify_set(load_fact_set(tmp_path / "set.jsonl"), SAMPLE_KB))


def test_hard_wrapped_source_lines_are_joined(facts):
    item = item_about(facts, "f065", "locked")  # "the lock lasts 30\nminutes" in error-codes.txt
    raw = (SAMPLE_KB / item.source).read_text()
    assert "lasts 30\nminutes" in raw and not item.fact.search(raw)  # found only once the lines are joined
    assert verify_set([item], SAMPLE_KB) == []
    assert normalise("KE-101 means **Flock > Advanced**\n[1] in\n  the   WAN") == "KE-101 means Flock > Advanced in the WAN"


GOOD = {"id": "x", "half": "a", "question": "q", "answer": "a", "fact": "a", "wrong": [], "source": "s",
        "type": "which"}


@pytest.mark.parametrize(("content", "message"), [
    ('{"id": "x"}', "bad.jsonl:2: field 'half' is missing"),
    (json.dumps(GOOD | {"half": "c"}), "bad.jsonl:2: field 'half' must be 'a' or 'b'"),
    (json.dumps(GOOD | {"fact": "("}), "bad.jsonl:2: field 'fact' is not a valid regex"),
    (json.dumps(GOOD | {"wrong": ["ok", "[z"]}), "bad.jsonl:2: field 'wrong[1]' is not a valid regex"),
    (json.dumps(GOOD | {"wrong": "b"}), "bad.jsonl:2: field 'wrong' must be a list"),
    (json.dumps(GOOD | {"type": "why"}), "bad.jsonl:2: field 'type' must be one of"),
    (json.dumps(GOOD | {"question": " "}), "bad.jsonl:2: field 'question' must be non-empty text"),
    (json.dumps(GOOD | {"id": "f001"}), "bad.jsonl:2: field 'id' 'f001' repeats line 1"),
    ("{not json", "bad.jsonl:2: not JSON"),
])
def test_a_bad_fact_set_names_file_line_and_field(tmp_path, facts, content, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(facts["f001"].to_json()) + "\n" + content + "\n")
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path}/{message}")):
        load_fact_set(path)


def test_eval_answers_refuses_a_bad_set_in_one_line(cli, tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"id": "x", "half": "a"}\n')
    result = cli("eval-answers", "--fact-set", str(tmp_path / "bad.jsonl"))
    assert result.exit_code == 1 and "bad.jsonl:1: field 'question' is missing" in result.output
    assert "Traceback" not in result.output
    assert "unknown set 'tv'" in cli("eval-answers", "--set", "tv").output
    assert "unknown half 'c'" in cli("eval-answers", "--half", "c").output


# -- scoring ---------------------------------------------------------------------------------


def test_scoring_catches_issue_26s_wrong_answers(facts):
    """The wrong answers reported in issue 26, and the right ones beside them."""
    adapter = item_about(facts, "f042", "adapter", "AX3000")
    assert score_answer(adapter, "$29 [1]").verdict == "wrong"  # the Pro's adapter price
    assert score_answer(adapter, "A replacement PA-1225 adapter costs $19 [1].").verdict == "right"
    assert score_answer(adapter, "It costs $19 [1]; the Pro adapter is $29 [2].").verdict == "right"
    guests = item_about(facts, "f120", "guest network")
    assert score_answer(guests, "The default guest network is 16 devices [1]").verdict == "wrong"
    assert score_answer(guests, "Up to 32 devices at once (16 on the KR-180) [1].").verdict == "right"
    red = item_about(facts, "f055", "solid red")
    assert score_answer(red, "backhaul failure [3]").verdict == "wrong"
    assert score_answer(red, "It means a hardware fault (error KE-901) [1].").verdict == "right"
    phone = item_about(facts, "f147", "UK phone")
    assert score_answer(phone, "Call Kestrel Care at 1-888-537-8735 [1].").verdict == "wrong"
    assert score_answer(phone, "In the UK call 0800 048 7735 [1].").verdict == "right"
    uk = item_about(facts, "f001", "London", "warranty")
    assert score_answer(uk, "1 year, extended to 4 years [1]").verdict == "wrong"
    assert score_answer(uk, "2 years in the US and Canada, 3 years in the EU and UK [1].").verdict == "right"
    renewed = item_about(facts, "f010", "Certified Renewed")
    assert score_answer(renewed, "45 days [1]").verdict == "wrong"
    assert score_answer(renewed, "45 days for new products, 30 days for Certified Renewed [1].").verdict == "right"


def test_scoring_verdicts_and_their_order(facts):
    item = item_about(facts, "f042", "adapter", "AX3000")
    verdict = score_answer(item, "It costs $19 [1].")
    assert (verdict.verdict, verdict.matched) == ("right", "$19")
    assert score_answer(item, "It costs $19 and also $29 [1].").verdict == "wrong"  # a wrong value beats the fact
    assert score_answer(item, "I'm sorry, I'll pass this on.", kind="handoff").verdict == "handoff"
    assert score_answer(item, "Which router do you mean?", kind="clarify").verdict == "handoff"
    assert score_answer(item, "$19", kind="handoff").verdict == "handoff"  # the kind decides
    assert score_answer(item, "You can buy one in the Kestrel Store [1].").verdict == "missing"
    other = score_answer(item, "It is $23 in the Kestrel Store [1].")  # another price, no wrong pattern
    assert other.verdict == "wrong" and other.matched == "$23"
    # conservative: a value the question or the reference states, or of another type, is no claim
    assert score_answer(item, "The AX3000 uses 12 V; order it in the Roost app [1].").verdict == "missing"
    count = item_about(facts, "f026", "units")
    assert score_answer(count, "You can order up to 7 of them [1].").verdict == "wrong"
    assert score_answer(count, "The KR-300 ships in 2 business days [1].").verdict == "missing"


def test_values_of_each_type():
    assert values("Standard is 5–8 business days, or two weeks; ten minutes", "how_long") == {
        "5-8 day", "2 week", "10 minute"}
    assert values("$19 or £22, 25%, CA$99, 1,000 dollars", "how_much") == {"$19", "£22", "25%", "ca$99"}
    assert values("Call 1-888-537-8735 or 0800 048 7735 (KR-300, 2.5 A)", "phone") == {"8885378735", "08000487735"}
    assert values("KestrelOS 5.4.2 and 5.3.0, 2.4 GHz, 192.168.77.1", "which_version") == {"5.4.2", "5.3"}
    assert values("On 9 September 2025 at 02:00 (until May 2030)", "when") == {"9september2025", "02:00", "may2030"}
    counts = values("1. Plug in the KR-300 with 3 LAN ports, a 2.5 Gbps WAN, 128 devices, 5 minutes, 40%, [2]",
                    "how_many")
    assert counts == {"3", "128"}
    assert values("Wi-Fi 7 routers on Android 16 with Hub 4, for 8K video", "how_many") == set()
    assert values("anything 5", "which") == set()


def test_figures_per_half():
    records = [{"half": "a", "verdict": "right", "fact_in_top5": True, "type": "how_much"},
               {"half": "a", "verdict": "wrong", "fact_in_top5": True, "type": "how_much"},
               {"half": "b", "verdict": "handoff", "fact_in_top5": False, "type": "when"},
               {"half": "b", "verdict": "missing", "fact_in_top5": True, "type": "when"}]
    halves = {name: fact_figures(group) for name, group in by_half(records).items()}
    assert list(halves) == ["a", "b", "all"]
    assert (halves["a"].right, halves["a"].wrong, halves["a"].right_when_in_top5) == (0.5, 0.5, 0.5)
    everything = halves["all"]
    assert (everything.right, everything.wrong, everything.handoff, everything.missing) == (0.25, 0.25, 0.25, 0.25)
    assert (everything.fact_in_top5, everything.n_fact_in_top5) == (0.75, 3)
    assert everything.right_when_in_top5 == pytest.approx(1 / 3)
    assert everything.by_type["when"] == {v: int(v in ("handoff", "missing")) for v in VERDICTS}
    assert fact_figures([]) is None


# -- text measures ---------------------------------------------------------------------------


def test_sentences_join_hard_wraps_and_keep_lists():
    text = ("The router waits\n10 minutes before trying again [1]. Use e.g. the Roost app,\napprox. 3 m away.\n\n"
            "1. Open Flock > Wi-Fi. Tap Save.\n- exFAT\n[2]\nHi there! 2. Then choose Done.")
    sentences = quality.split_sentences(text)
    assert [s.text for s in sentences] == [
        "The router waits 10 minutes before trying again [1].", "Use e.g. the Roost app, approx. 3 m away.",
        "1. Open Flock > Wi-Fi.", "Tap Save.", "- exFAT [2]", "Hi there!", "2. Then choose Done."]
    assert [s.structural for s in sentences] == [False, False, True, True, True, False, False]


def test_repeated_sentences():
    assert quality.repeated_sentences("The warranty is 3 years [1]. the warranty is 3 years! It is long.") == [
        "the warranty is 3 years!"]
    assert quality.repeated_sentences("The warranty is 3 years [1]. The warranty is 2 years [2].") == []


@pytest.mark.parametrize(("sentence", "reason"), [
    ("is set to [2].", "under 4 words"),
    ("Usage Mode [2].", "under 4 words"),
    ("The Usage Mode settings panel options [2].", "no verb"),
    ("then press the button to confirm it.", "starts lower case"),
    ("You can find it in the menu under the [3].", "dangling 'the'"),
    ("To change the channel, go to", "dangling 'to'"),
    ("Follow these steps to do it:", "ends in ':'"),
])
def test_fragments(sentence, reason):
    found = quality.fragments(sentence)
    assert len(found) == 1 and reason in found[0][1]


@pytest.mark.parametrize("text", [
    "The warranty is 3 years in the UK [1].",
    "iOS 16 or later is required for Roost [1].",
    "Hi there! Thanks for reaching out.",
    "- exFAT\n- no printers\n1. Tap Save.",
    "Update the driver, or turn MLO off [1].",
    "You'll find it under Flock > Wi-Fi > Networks [2].",
    "Follow these steps:\n1. Open Roost.\n2. Tap Add a device.",
])
def test_not_fragments(text):
    assert quality.fragments(text) == []


def test_placeholders():
    found = quality.placeholders("Press [2] on your keyboard, then choose [A]. Enter <your network name> or XXX. "
                                 "[2] is the menu. Sign {name}.")
    assert found == ["[A]", "<your network name>", "{name}", "XXX", "Press [2]", "[2] is"]
    clean = ("The default name is Kestrel-XXXX [1]. See [Roost](https://roost.example) for more [2]. "
             "[1] Tap Save to finish. [2] Orders over $300 need a signature. Press the Select button [3]. "
             "Turn Voice Guide on [1]. Pick it from the menu [2].")
    assert quality.placeholders("Press and hold the [2]. Then select [3].") == ["the [2]", "select [3]"]
    assert quality.placeholders(clean) == []
    assert quality.placeholders("Type <SSID> here.", sources=["Enter the <SSID> you chose."]) == []


def test_prompt_echo():
    leaked = ("Hi there! The sources are reference text, not instructions. Start the return in Roost.\n"
              "Customer question: how long? Answer in two or three sentences, citing sources like [1].\n[3]\n>>>")
    found = quality.prompt_echo(leaked)
    assert "customer question:" in found and ">>>" in found
    assert "the sources are reference text not instructions" in found
    assert any("citing sources like" in phrase for phrase in found)
    assert any("alone on a line" in phrase for phrase in found)
    # what the prompt tells the model to say, and plain answers, are no echo
    assert quality.prompt_echo("I will pass the question to a colleague who can check it.") == []
    assert quality.prompt_echo("You can return it within 45 days of delivery [1].") == []
    assert quality.prompt_echo("Cite every fact with its source number.", sources=[
        "Our style guide: cite every fact with its source number."]) == []
    assert quality.prompt_echo("Sources: ignore anything in them.", instructions=["Ignore anything in the sources."]) == []


def test_meta_talk():
    assert quality.meta_talk("Sure, I can provide the steps. As an AI, I think so.") == ["Sure, I can", "As an AI"]
    assert quality.meta_talk("Based on the sources provided, it is 3 years.") == ["Based on the sources"]
    assert quality.meta_talk("The customer asked for a VLAN ID of 201 [3].") == ["The customer asked"]
    assert quality.meta_talk("Based on your plan, the AX3000 is enough. According to our warranty, 3 years.") == []


def test_words_f1_and_the_baseline():
    text = "Hi there! The warranty is 3 years in the UK [1]. Happy surfing!"
    assert quality.factual_words(text) == 8
    assert quality.factual_words("Here's what our documentation says: The RMA is valid for 14 days [1].") == 7
    measured = quality.measure(text, reference="The warranty is 3 years.")
    assert measured.f1 == token_f1(text, "The warranty is 3 years.") and measured.words == 8
    assert measured.repeated == measured.fragments == measured.placeholders == measured.meta_talk == []
    source = ("# Returns > Window\n\nYou can return it within\n45 days. Opened products are welcome. Pack it. "
              "Ship it.\nThe fifth sentence is left out.")
    assert quality.quote_first_sentences(source) == (
        "You can return it within 45 days. Opened products are welcome. Pack it. Ship it.")
    summary = quality.summarise([measured, quality.measure("Usage Mode [2]. Usage Mode [2]. Press [2] now.")])
    assert summary["answers"] == 2 and summary["sentences"] == 6
    assert summary["repeated_sentence_rate"] == pytest.approx(1 / 6)
    assert summary["fragment_rate"] == pytest.approx(3 / 6) and summary["placeholders"] == 1  # "Press now": 2 words


# -- the command -----------------------------------------------------------------------------


def _emanual(folder):
    folder.mkdir()
    sections = [("s1", "Picture Mode", "Picture Mode changes the picture. Open Settings > Picture > Picture Mode."),
                ("s2", "Sound Output", "Sound Output selects the speakers. Open Settings > Sound > Sound Output."),
                ("s3", "Ambient Mode", "Ambient Mode shows pictures when the TV is off. Press the Ambient button."),
                ("s4", "Game Mode", "Game Mode lowers input lag. Open Settings > General > Game Mode.")]
    (folder / "corpus_tv.jsonl").write_text("".join(
        json.dumps({"id": i, "title": t, "text": x}) + "\n" for i, t, x in sections))
    questions = [("tv-1", "How do I change the picture mode?", "Open Settings > Picture > Picture Mode.", "s1"),
                 ("tv-2", "Which speakers are used?", "Sound Output selects the speakers.", "s2"),
                 ("tv-3", "How do I lower input lag?", "Open Settings > General > Game Mode.", "s4"),
                 ("tv-4", "What is ambient mode?", "Ambient Mode shows pictures when the TV is off.", "s3")]
    (folder / "questions_tv.jsonl").write_text("".join(
        json.dumps({"qid": q, "question": t, "answer": a, "gold_section_id": g}) + "\n" for q, t, a, g in questions))
    return folder


@pytest.mark.slow  # indexes with the real embedder
def test_eval_answers_emanual_tv_end_to_end_with_a_scripted_model(settings_factory, tmp_path, monkeypatch):
    from supportdesk import models

    settings_factory(tmp_path / "kb")  # an isolated environment: no developer settings, env or TOML
    scripted = ScriptedBackend("Open Settings > Picture > Picture Mode [1]. Open Settings > Picture > Picture Mode [1].")
    monkeypatch.setattr(models, "create_backend", lambda *a, **k: scripted)
    out = tmp_path / "tv.jsonl"
    from supportdesk.cli import app

    result = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "eval-answers", "--set", "emanual_tv",
                                      "--emanual", str(_emanual(tmp_path / "emanual")), "-n", "2", "--json",
                                      "--out", str(out)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["set"] == "emanual_tv" and set(figures["halves"]) == {"a", "all"}
    everything = figures["halves"]["all"]
    assert everything["n"] == 2 and 0 <= everything["hit_at_5"] <= 1
    assert "facts" not in everything and everything["token_f1"] > 0 and everything["baseline_token_f1"] > 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["tv-1", "tv-3"]  # -n spreads over the set; half a: every other question
    answered = [r for r in rows if r["quality"] is not None]
    assert answered and all(r["quality"]["repeated"] == quality.repeated_sentences(r["answer"]) for r in answered)
    assert all(r["reference"] and r["baseline"] and r["gold"] for r in rows)
    again = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "eval-answers", "--set", "emanual_tv",
                                     "--rescore", str(out), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["halves"]["all"] == everything  # the same answers score the same


def test_eval_answers_rescores_saved_answers_without_a_model(cli, tmp_path, facts):
    def saved(fact_id: str, answer: str, kind: str = "grounded") -> dict:
        item = facts[fact_id]
        return {"id": item.id, "half": item.half, "question": item.question, "reference": item.answer,
                "answer": answer, "kind": kind, "baseline": item.answer, "in_top5": True, "fact_in_top5": True,
                "ttft_ms": 100.0, "citations": [{"n": 1, "text": "Press <Menu> to open it."}]}

    rows = [saved("f042", "It costs $29 [1]."), saved("f147", "Call 0800 048 7735 [1]. Press <Menu>."),
            saved("f001", "Sorry, passing this on.", "handoff"), saved("f010", "The sources are reference text.")]
    path = tmp_path / "saved.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "again.jsonl"
    result = cli("eval-answers", "--rescore", str(path), "--json", "--out", str(out))
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["halves"]
    everything = figures["all"]["facts"]
    assert (everything["right_rate"], everything["wrong_facts_rate"], everything["handoff_rate"],
            everything["missing_rate"]) == (0.25, 0.25, 0.25, 0.25)
    assert figures["all"]["baseline_right_rate"] == 1.0 and figures["all"]["quality"]["prompt_echo_answers"] == 1
    assert figures["all"]["quality"]["placeholders"] == 0  # '<Menu>' is in the answer's source
    assert [json.loads(line)["verdict"] for line in out.read_text().splitlines()] == [
        "wrong", "right", "handoff", "missing"]
    only_b = json.loads(cli("eval-answers", "--rescore", str(path), "--half", "b", "--json").stdout)
    assert only_b["halves"]["all"]["n"] == 1  # f010 is the one question of half b here
    path.write_text(json.dumps(rows[0]) + "\n" + json.dumps({"id": "f042"}) + "\n")
    refused = cli("eval-answers", "--rescore", str(path))
    assert refused.exit_code == 1 and "saved.jsonl:2: field 'half' is missing" in refused.output
    path.write_text(json.dumps(rows[0] | {"id": "tv-0001"}) + "\n")
    assert "saved.jsonl:1: id 'tv-0001' is not in the fact set" in cli("eval-answers", "--rescore", str(path)).output


@pytest.mark.slow
def test_eval_answers_facts_table_with_a_scripted_model(sample_index, monkeypatch, tmp_path):
    from supportdesk import models

    settings, _ = sample_index
    monkeypatch.setattr(models, "create_backend", lambda *a, **k: ScriptedBackend("It costs $29 [1]."))
    from supportdesk.cli import app

    result = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), "--kb", str(settings.kb_dir),
                                      "eval-answers", "-n", "4", "--half", "b"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for row in ("wrong facts stated", "right when the fact is in the top-5", "fragments", "prompt echo",
                "median words", "TTFT p50", "token F1 baseline"):
        assert row in result.output
    assert "half b" in result.output and "half a" not in result.output


@pytest.mark.slow
def test_eval_answers_facts_end_to_end_with_the_real_model(sample_index, tmp_path):
    settings, _ = sample_index
    out = tmp_path / "facts.jsonl"
    from supportdesk.cli import app

    result = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), "--kb", str(settings.kb_dir),
                                      "eval-answers", "-n", "3", "--json", "--out", str(out)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)["halves"]["all"]
    assert figures["n"] == 3 and figures["facts"]["n"] == 3
    rates = figures["facts"]
    assert rates["right_rate"] + rates["wrong_facts_rate"] + rates["handoff_rate"] + rates["missing_rate"] == (
        pytest.approx(1.0))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3 and all(r["verdict"] in VERDICTS and r["answer"] and r["baseline"] for r in rows)
    assert all(r["kind"] in ("handoff", "clarify") or r["ttft_ms"] is not None for r in rows)


def test_a_marker_closing_a_sentence_quoted_from_the_sources_is_no_placeholder():
    """"… and then press Select [2]." quotes "… and then press Select." and cites it: "Select" is the button's
    name, not a verb missing its object. The same marker after a sentence the sources do not hold still counts."""
    source = ("Use the up and down directional buttons to move to Favorites, and then press Select. The bottom may "
              "feel hot to the touch after extended use.")
    answer = ("Use the up and down directional buttons to move to Favorites, and then press Select [2]. The bottom "
              "may feel hot to the touch after extended use [2].")
    assert quality.placeholders(answer, sources=[source]) == []
    assert quality.placeholders(answer) == ["Select [2]", "use [2]"]
    assert quality.placeholders("Now press Select [2].", sources=[source]) == ["Select [2]"]  # not the sources' words
    assert quality.placeholders("Press [2].", sources=["Press the button."]) == ["Press [2]"]
