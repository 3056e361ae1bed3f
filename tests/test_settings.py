"""Settings come from flags, env, .env and TOML, in that order, and say where each came from."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from supportdesk.cli import app
from supportdesk.settings import Settings, explain


@pytest.fixture
def clean_env(settings_factory, tmp_path):
    return tmp_path  # settings_factory already isolates env, cwd and XDG dirs


def test_defaults_and_xdg_data_dir(clean_env):
    settings = Settings()
    assert settings.data_dir == clean_env / "xdg-data" / "supportdesk"
    assert settings.retrieval.mode == "hybrid" and settings.model.backend == "embedded"
    assert settings.kb_dir.name == "kb" and (settings.kb_dir / "faq.md").exists()


def test_precedence_cli_env_dotenv_toml(clean_env, monkeypatch):
    (clean_env / "supportdesk.toml").write_text(
        '[retrieval]\ntop_k = 7\ncandidates = 30\nmode = "dense"\n[chunking]\nchunk_size = 700\n'
    )
    (clean_env / ".env").write_text("SUPPORTDESK_RETRIEVAL__CANDIDATES=33\nUNRELATED_KEY=1\n")
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__MODE", "bm25")
    settings = Settings(data_dir=clean_env / "cli-data")
    assert settings.retrieval.top_k == 7  # TOML
    assert settings.retrieval.candidates == 33  # .env beats TOML
    assert settings.retrieval.mode == "bm25"  # env beats .env
    assert settings.chunking.chunk_size == 700
    rows = {key: (value, source) for key, value, source, _ in explain(settings, {"data_dir": clean_env / "cli-data"})}
    assert rows["retrieval.top_k"] == (7, "supportdesk.toml")
    assert rows["retrieval.candidates"] == (33, ".env")
    assert rows["retrieval.mode"] == ("bm25", "env")
    assert rows["data_dir"][1] == "cli"
    assert rows["retrieval.rrf_k"][1] == "default"


def test_every_setting_is_described(clean_env):
    rows = explain(Settings())
    missing = [key for key, _, _, description in rows if not description]
    assert not missing


def test_invalid_values_name_the_field(clean_env, monkeypatch):
    monkeypatch.setenv("SUPPORTDESK_RETRIEVAL__TOP_K", "0")
    with pytest.raises(ValidationError, match="top_k"):
        Settings()


def test_config_command_reports_sources_and_bad_values(clean_env, monkeypatch):
    runner = CliRunner()
    monkeypatch.setenv("SUPPORTDESK_KB_DIR", str(clean_env))
    result = runner.invoke(app, ["--data-dir", str(clean_env / "d"), "config", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kb_dir"] == {"value": str(clean_env), "source": "env", "description": data["kb_dir"]["description"]}
    assert data["data_dir"]["source"] == "cli"
    table = runner.invoke(app, ["--data-dir", str(clean_env / "d"), "config"], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "[best doc score, query-term coverage" in table.stdout  # brackets are text, not markup

    monkeypatch.setenv("SUPPORTDESK_CHUNKING__CHUNK_SIZE", "ten")
    bad = runner.invoke(app, ["config"])
    assert bad.exit_code == 1
    assert "invalid settings: chunking.chunk_size" in bad.stderr
    assert "Traceback" not in bad.output


def test_malformed_toml_is_a_clear_error(clean_env):
    (clean_env / "supportdesk.toml").write_text("[retrieval\ntop_k = ")
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 1 and "cannot read settings" in result.stderr
