"""The command line as a person meets it: --version, help pages, and 'config' (issue 30 item 18)."""

from __future__ import annotations

import json

import pytest
import typer.main
from rich.text import Text
from typer.testing import CliRunner

import supportdesk
from supportdesk.cli import app
from supportdesk.settings import explain, load_settings


def _commands():
    """Every command path of the CLI, the root included, with its click command."""
    def walk(command, path):
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    return list(walk(typer.main.get_command(app), []))


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"supportdesk {supportdesk.__version__}"


def test_flags_are_shown_as_flags_not_as_bool_values():
    """'--json <bool>' read as if it took a value; a flag shows as the switch it is."""
    runner = CliRunner()
    pages = 0
    for path, _command in _commands():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, (path, result.output)
        assert "<bool>" not in result.output, (path, result.output)
        pages += 1
    assert pages > 20
    page = runner.invoke(app, ["history", "export", "--help"], env={"COLUMNS": "200"}).output
    assert "--rated-good " in page and "--output" in page and "<path>" in page  # options with values keep theirs


def test_help_texts_are_shown_whole():
    """'TOML file's [router]' was read as Rich markup and shown as 'TOML file's .'."""
    for path, command in _commands():
        texts = [command.help or "", *(getattr(p, "help", None) or "" for p in command.params)]
        for text in texts:
            assert Text.from_markup(text).plain == text.replace("\\[", "["), (path, text)
    page = CliRunner().invoke(app, ["router", "calibrate", "--help"], env={"COLUMNS": "200"}).output
    assert "this TOML file's [router] table" in page


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SUPPORTDESK_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__TOP_K", "7")

    def run(*args: str, columns: int = 80):
        return CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), "config", *args],
                                  env={"COLUMNS": str(columns)})

    return run


def test_config_table_keeps_every_key_whole_at_80_columns(config, tmp_path):
    """It printed 514 lines at 80 columns, keys cut ('chunking.chunk_over…')."""
    result = config()
    assert result.exit_code == 0, result.output
    keys = [row[0] for row in explain(load_settings(data_dir=tmp_path / "data"))]
    assert "…" not in result.stdout
    for key in keys:
        assert f" {key} " in result.stdout, key
    assert len(result.stdout.splitlines()) < 2 * len(keys)  # was 514 lines: descriptions wrapped in a narrow column
    assert "config KEY" in result.stdout  # where the descriptions are
    wide = config(columns=200)
    assert "Chunks returned per query." in wide.stdout


def test_config_key_section_and_json(config):
    one = config("retrieval.top_k")
    assert one.exit_code == 0, one.output
    assert one.stdout.splitlines() == ["retrieval.top_k = 7", "  source: env", "  Chunks returned per query."]
    as_json = json.loads(config("retrieval.top_k", "--json").stdout)
    assert as_json == {"retrieval.top_k": {"value": 7, "source": "env", "description": "Chunks returned per query."}}
    section = json.loads(config("chunking", "--json").stdout)
    assert set(section) == {"chunking.chunk_size", "chunking.chunk_overlap", "chunking.max_file_mb"}
    every = json.loads(config("--json").stdout)
    assert "retrieval.top_k" in every and len(every) > 40
    typo = config("retreival.top_k")
    assert typo.exit_code == 1 and "no setting 'retreival.top_k'; did you mean 'retrieval.top_k'?" in typo.stderr
