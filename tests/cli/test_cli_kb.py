"""The kb commands end to end, with the real MiniLM embedder on a small copy of the sample KB."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from supportdesk.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture
def run(settings_factory, small_kb, tmp_path):
    runner = CliRunner()
    base = ["--data-dir", str(tmp_path / "data"), "--kb", str(small_kb)]

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [*base, *args], input=input, env={"COLUMNS": "200"})

    return invoke


def test_build_search_stats(run, small_kb):
    built = run("kb", "build", "--json")
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout.strip().splitlines()[-1])
    assert report["ok"] and len(report["added"]) == 4 and report["chunks_total"] > 20

    found = run("kb", "search", "How many days do I have to send a router back?", "-k", "3", "--json")
    assert found.exit_code == 0, found.output
    line = json.loads(found.stdout)
    top = line["hits"][0]
    assert top["source"] in {"policies/returns-and-refunds.txt", "faq.md"}
    assert 0.0 <= top["score"] <= 1.0 and top["rank"] == 1 and top["heading"] and top["text"]
    assert set(line["timings_ms"]) == {"embed_ms", "search_ms"}

    code = json.loads(run("kb", "search", "What does error KE-103 mean?", "--json").stdout)
    assert code["hits"][0]["source"] == "troubleshooting/no-internet.html"
    table = run("kb", "search", "What does error KE-103 mean?")
    assert table.exit_code == 0 and "troubleshooting/no-internet.html" in table.stdout and "score" in table.stdout

    stats = run("kb", "stats", "--json")
    data = json.loads(stats.stdout)
    assert data["files"] == 4 and data["by_kind"]["pdf"] == 1

    (small_kb / "faq.md").write_text("# FAQ\n\nThe office cat is called Pixel.\n")
    rebuilt = run("kb", "build")
    assert rebuilt.exit_code == 0
    assert "0 added, 1 changed, 0 removed, 3 unchanged" in " ".join(rebuilt.stdout.split())


def test_queries_file_gives_one_json_line_per_query(run, tmp_path):
    assert run("kb", "build").exit_code == 0
    queries = tmp_path / "q.txt"
    queries.write_text("refund time\n\nPPPoE sign-in failed\nsafety of the battery\n")
    result = run("kb", "search", "--queries", str(queries), "--json", "-k", "2")
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["query"] for line in lines] == ["refund time", "PPPoE sign-in failed", "safety of the battery"]
    assert all(len(line["hits"]) == 2 for line in lines)
    assert lines[2]["hits"][0]["page"] is not None or lines[2]["hits"][1]["page"] is not None

    from_stdin = run("kb", "search", "--queries", "-", "--json", input="warranty\n")
    assert json.loads(from_stdin.stdout)["query"] == "warranty"


def test_errors_are_one_clear_line(run, tmp_path):
    no_index = run("kb", "search", "anything")
    assert no_index.exit_code == 1 and "no index yet" in no_index.stderr and "kb build" in no_index.stderr
    both = run("kb", "search", "x", "--queries", str(tmp_path / "q"))
    assert both.exit_code == 1 and "either a QUERY or --queries" in both.stderr
    missing = run("kb", "search", "--queries", str(tmp_path / "missing.txt"))
    assert missing.exit_code == 1 and "cannot read queries file" in missing.stderr
    bad_mode = run("kb", "search", "x", "--mode", "fuzzy")
    assert bad_mode.exit_code == 1 and "--mode must be" in bad_mode.stderr
    nokb = CliRunner().invoke(app, ["--data-dir", str(tmp_path / "d2"), "--kb", str(tmp_path / "nokb"), "kb", "build"])
    assert nokb.exit_code == 1 and "does not exist" in nokb.stderr
    for result in (no_index, both, missing, bad_mode, nokb):
        assert "Traceback" not in result.output
