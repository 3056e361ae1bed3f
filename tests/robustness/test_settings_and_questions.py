"""Settings with typos, and questions that are empty or not valid UTF-8."""

from __future__ import annotations

import os

import pytest
from conftest import ScriptedBackend
from fixtures.outcome import no_traceback
from typer.testing import CliRunner

from supportdesk.cli import app


def test_unknown_setting_keys_are_named_with_their_file(settings_factory, tmp_path, monkeypatch):
    """Weak spot: '[retrieval] topk' was ignored in silence."""
    (tmp_path / "supportdesk.toml").write_text("[retrieval]\ntopk = 8\n\n[modle]\nbackend = 'ollama'\n")
    monkeypatch.setenv("SUPPORTDESK_ROUTER__THRESHOLDD", "0.4")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "supportdesk.toml: unknown setting 'retrieval.topk' is ignored; did you mean 'retrieval.top_k'?" in result.stderr
    assert "unknown setting 'modle'" in result.stderr
    assert "SUPPORTDESK_ROUTER__THRESHOLDD is not a setting" in result.stderr and "router.threshold" in result.stderr


def test_invalid_toml_names_the_file(settings_factory, tmp_path):
    (tmp_path / "supportdesk.toml").write_text("[retrieval]\ntop_k = = 3\n")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'supportdesk.toml'} is not valid TOML" in result.stderr and "line 2" in result.stderr
    no_traceback(result)


@pytest.fixture
def pipeline(settings_factory, small_kb, hash_embedder):
    from supportdesk.answers import AnswerPipeline
    from supportdesk.kb import KnowledgeBase

    settings = settings_factory(small_kb)
    kb = KnowledgeBase(settings, embedder=hash_embedder)
    assert kb.reload().ok
    return AnswerPipeline(settings, kb, ScriptedBackend("Sure, here is how [1]."))


def test_question_with_invalid_utf8_is_answered(pipeline):
    """Defect 11 (answer side): the tokenizer used to raise TypeError on surrogates."""
    question = os.fsdecode(b"how do I return my router \xff\xfe?")
    result = pipeline.ask(question).run()
    assert result.question == "how do I return my router \ufffd\ufffd?" and result.answer


ZERO_WIDTH = ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u2060 \n\u200b", "\u00ad\u061c\u200e\u202e"]


@pytest.mark.parametrize("blank", ["", "   ", "\n\t ", "\x1b[2J\x07", *ZERO_WIDTH])
def test_empty_questions_are_refused_before_the_model(pipeline, blank):
    """Weak spot: whitespace-only questions went to the model; issue 30 item 14: so did a question of
    zero-width / format characters (Unicode Cf) only."""
    from supportdesk.answers import EmptyQuestion

    with pytest.raises(EmptyQuestion, match="the question is empty"):
        pipeline.ask(blank)
    assert pipeline.backend.prompts == []


def test_ask_cli_refuses_an_empty_question_without_loading_a_model(cli):
    assert cli("kb", "build").exit_code == 0
    for blank in ("   ", *ZERO_WIDTH):
        result = cli("ask", blank)
        assert result.exit_code == 1 and "the question is empty" in result.stderr, repr(blank)
        no_traceback(result)


def test_format_characters_are_trimmed_but_kept_inside_a_question():
    from supportdesk.sanitize import clean_question

    assert clean_question("\ufeff\u200bHow do I reset the Perch?\u2060 ") == "How do I reset the Perch?"
    assert clean_question("family \U0001f468\u200d\U0001f469") == "family \U0001f468\u200d\U0001f469"


@pytest.mark.parametrize("command", [["history", "list"], ["history", "move-aside"], ["history", "export"],
                                     ["kb", "stats"], ["kb", "build"], ["ask", "hello"], ["adapter", "list"]])
def test_a_data_dir_that_is_a_file_is_one_message(tmp_path, command):
    """Issue 30 item 11: 'history list' called it a damaged history and suggested move-aside (which
    found no history file); 'kb stats' suggested 'kb build', which failed."""
    data = tmp_path / "data"
    data.write_text("not a folder\n")
    result = CliRunner().invoke(app, ["--data-dir", str(data), *command])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [(f"error: the data dir {data} is a file, not a folder: pass --data-dir FOLDER or set "
                      "SUPPORTDESK_DATA_DIR to a folder")], result.stderr
    no_traceback(result)
    assert data.read_text() == "not a folder\n"  # nothing written over it
    below = CliRunner().invoke(app, ["--data-dir", str(data / "sub"), *command])
    assert below.exit_code == 1 and f"{data} is a file, not a folder" in below.stderr


def test_config_still_shows_settings_with_a_data_dir_that_is_a_file(tmp_path):
    data = tmp_path / "data"
    data.write_text("")
    result = CliRunner().invoke(app, ["--data-dir", str(data), "config", "--json"])
    assert result.exit_code == 0 and f"warning: the data dir {data} is a file" in result.stderr
