"""KB documents with hostile names and encodings: skipped with a reason that names them, never
a failed build, never raw escape sequences on the terminal."""

from __future__ import annotations

import json
import os

from fixtures.outcome import no_traceback

ESC_NAME = "evil\x1b]0;pwned\x07\x1b[31mred.md"


def test_escape_sequences_in_file_names_never_reach_the_terminal(cli, small_kb):
    """Defect 2: build output, stats, search source column."""
    (small_kb / ESC_NAME).write_text("# Zebra crossing\n\nThe zebra router blinks purple when updating.\n")
    (small_kb / "bad\x1b[2Jname.xyz").write_text("unsupported")
    built = cli("kb", "build")
    assert built.exit_code == 0, built.output
    for result in (built, cli("kb", "stats"), cli("kb", "search", "zebra router purple", "--mode", "bm25"),
                   cli("kb", "search", "zebra router purple", "--json")):
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\x07" not in result.output
    found = json.loads(cli("kb", "search", "zebra router purple", "--json", "--mode", "bm25").stdout)
    assert found["hits"][0]["source"] == "evil\\x1b]0;pwned\\x07\\x1b[31mred.md"  # shown, escaped


def test_file_name_that_is_not_utf8_is_skipped_and_named(cli, small_kb):
    """Defect 3: the rest of the KB is indexed."""
    os.makedirs(small_kb, exist_ok=True)
    with open(os.path.join(os.fsencode(small_kb), b"caf\xe9-menu.md"), "wb") as handle:
        handle.write(b"# Menu\n\nCoffee.\n")
    built = cli("kb", "build", "--json")
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout.strip().splitlines()[-1])
    assert len(report["added"]) == 4
    assert {"file": "caf\\xe9-menu.md", "reason": "file name is not valid UTF-8: rename the file"} in report["skipped"]
    assert "caf\\xe9-menu.md" in built.stderr
    no_traceback(built)


def test_html_declaring_an_unusable_charset_is_skipped(cli, small_kb):
    """Defect 4: punycode is a codec, but not one a page can be written in."""
    (small_kb / "weird.html").write_bytes(b'<html><head><meta charset="punycode"></head><body><p>Hi there</p></body></html>')
    (small_kb / "unknown.html").write_bytes(b'<meta charset="klingon-8"><p>Hi</p>')
    (small_kb / "codec.html").write_bytes(b'<meta charset="base64"><p>Hi</p>')
    built = cli("kb", "build", "--json")
    assert built.exit_code == 0, built.output
    report = json.loads(built.stdout.strip().splitlines()[-1])
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert len(report["added"]) == 4
    assert "punycode" in reasons["weird.html"] and "UTF-8" in reasons["weird.html"]
    assert "klingon-8" in reasons["unknown.html"] and "base64" in reasons["codec.html"]
    no_traceback(built)


def test_a_loader_crash_skips_that_file_only(settings_factory, small_kb, hash_embedder, monkeypatch):
    """The pattern behind defects 3-4: whatever one file does, the reload goes on."""
    import supportdesk.kb.build as build_module
    from supportdesk.kb import KnowledgeBase

    real = build_module.load

    def flaky(source):
        if source.rel == "faq.md":
            raise MemoryError("parser blew up")
        return real(source)

    monkeypatch.setattr(build_module, "load", flaky)
    report = KnowledgeBase(settings_factory(small_kb), embedder=hash_embedder).reload()
    assert report.ok and len(report.added) == 3
    assert any(s.rel == "faq.md" and "MemoryError" in s.reason for s in report.skipped)


def test_questions_with_invalid_utf8_bytes(cli):
    """Defect 11 (search side): argv and --queries with bytes that are not UTF-8."""
    assert cli("kb", "build").exit_code == 0
    odd = os.fsdecode(b"router \xff\xfe reset")  # how Python hands such argv bytes over
    result = cli("kb", "search", odd, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["query"] == "router \ufffd\ufffd reset"
    from_stdin = cli("kb", "search", "--queries", "-", "--json", input=b"reset \xc3\x28 router\n")
    assert from_stdin.exit_code == 0, from_stdin.output
    empty = cli("kb", "search", "  \x1b[2J  ")
    assert empty.exit_code == 1 and "query is empty" in empty.stderr
    no_traceback(empty)
