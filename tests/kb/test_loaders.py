"""Each loader turns its format into heading-marked parts; chunks know where they came from."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLE_KB

from supportdesk.kb.chunking import split
from supportdesk.kb.files import SourceFile, scan
from supportdesk.kb.loaders import LoadError, load, text_to_markdown
from supportdesk.sanitize import strip_control


def source(path: Path, root: Path | None = None) -> SourceFile:
    root = root or path.parent
    kind = {".md": "markdown", ".txt": "text", ".html": "html", ".pdf": "pdf"}[path.suffix]
    st = path.stat()
    return SourceFile(path, path.relative_to(root).as_posix(), kind, st.st_size, st.st_mtime_ns)


def chunks_of(path: Path, size: int = 900):
    doc = load(source(path, SAMPLE_KB))
    return doc, split(doc, path.relative_to(SAMPLE_KB).as_posix(), size, 100)


def test_markdown_headings_become_heading_paths():
    doc, chunks = chunks_of(SAMPLE_KB / "manuals/aerie-ax3000-user-manual.md")
    assert doc.title == "Kestrel Aerie AX3000 User Manual"
    reset = [c for c in chunks if "Reset pinhole" in c.text and "12 seconds" in c.text]
    assert reset and reset[0].heading == "Kestrel Aerie AX3000 User Manual > Restarting and resetting"
    assert all(c.source == "manuals/aerie-ax3000-user-manual.md" and c.page is None for c in chunks)


def test_text_underlined_headings():
    assert text_to_markdown("Title\n=====\n\nBody\n\nPart\n----\nMore") == "# Title\n\nBody\n\n## Part\nMore"
    doc, chunks = chunks_of(SAMPLE_KB / "policies/returns-and-refunds.txt")
    assert doc.title == "Returns and Refunds Policy"
    headings = {c.heading for c in chunks}
    assert "Returns and Refunds Policy > The 45-day return window" in headings
    assert any("RMA is valid for 14 days" in c.text for c in chunks)


def test_html_keeps_headings_tables_and_drops_scripts_and_nav():
    doc, chunks = chunks_of(SAMPLE_KB / "troubleshooting/slow-wifi.html")
    assert doc.title == "Troubleshooting Slow Wi-Fi"
    text = "\n".join(c.text for c in chunks)
    assert "window.analytics" not in text and "FAQ" not in text.split("\n")[0]
    assert "| Poor | below -75 |" in text
    assert any(c.heading.endswith("Step 2: Check the signal") for c in chunks)


def test_pdf_pages_and_metadata_title():
    doc, chunks = chunks_of(SAMPLE_KB / "policies/safety-and-regulatory.pdf")
    assert doc.title == "Safety, Regulatory and Environmental Information"
    pages = {c.page for c in chunks}
    assert 1 in pages and len(pages) >= 2, pages
    assert any("2BKN7-KR300" in c.text for c in chunks)


def test_chunk_ids_are_stable_and_unique():
    _, first = chunks_of(SAMPLE_KB / "faq.md")
    _, second = chunks_of(SAMPLE_KB / "faq.md")
    assert [c.id for c in first] == [c.id for c in second]
    assert len({c.id for c in first}) == len(first)
    assert all(len(c.text) <= 900 for c in first)


def test_indexed_text_carries_title_and_heading():
    _, chunks = chunks_of(SAMPLE_KB / "troubleshooting/error-codes.txt")
    ke404 = next(c for c in chunks if "KE-404" in c.heading)
    assert ke404.indexed_text.startswith("Kestrel Error Code Reference > KE-404: 5G signal too weak\n")


def test_strip_control_removes_ansi_and_controls():
    dirty = "ok \x1b[31mred\x1b[0m \x1b]0;title\x07bell\x07 tab\tnl\ncr\r\x00nul \x9b2Jx"
    assert strip_control(dirty) == "ok red bell tab\tnl\ncr\nnul x"


def test_escapes_never_reach_chunk_text(tmp_path):
    path = tmp_path / "evil.md"
    path.write_text("# Evil\n\nPress \x1b[2J\x1b[H here \x1b]8;;http://x\x07link\x1b]8;;\x07 now.\n")
    doc = load(source(path))
    chunks = split(doc, "evil.md", 900, 100)
    assert chunks[0].text == "Press  here link now."


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("nul.txt", b"abc\x00def", "binary content"),
        ("latin1.md", "caf\xe9\nna\xefve".encode("latin-1"), "not valid UTF-8 (byte 0xe9 at line 1)"),
        ("fake.pdf", b"this is not a pdf", "not a PDF file"),
        ("broken.pdf", b"%PDF-1.4\n garbage", "unreadable PDF"),
        ("blank.md", b"   \n\n  ", "no text content"),
    ],
)
def test_bad_content_is_a_load_error_with_reason(tmp_path, name, content, reason):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(LoadError, match=None) as info:
        load(source(path))
    assert reason in str(info.value)


def test_unreadable_file_is_a_load_error(tmp_path, monkeypatch):
    path = tmp_path / "locked.md"
    path.write_text("# Locked")

    def deny(self):  # root can read anything, so simulate the OS refusing
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(LoadError, match="cannot read: Permission denied"):
        load(source(path))


def test_scan_skips_with_one_reason_each(tmp_path):
    kb = tmp_path / "kb"
    kb.mkdir()
    (kb / "good.md").write_text("# Good\n\ntext")
    (kb / "empty.txt").write_bytes(b"")
    with open(kb / "huge.txt", "wb") as handle:  # sparse: no disk used
        handle.truncate(21_000_000)
    (kb / "image.png").write_bytes(b"\x89PNG")
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret")
    (kb / "link.md").symlink_to(outside)
    (kb / "inside-link.md").symlink_to(kb / "good.md")
    (kb / "dangling.md").symlink_to(kb / "missing.md")
    (tmp_path / "elsewhere").mkdir()
    (kb / "linked-dir").symlink_to(tmp_path / "elsewhere")
    (kb / ".hidden.md").write_text("# hidden")

    found, skipped = scan(kb, 20_000_000)
    assert sorted(f.rel for f in found) == ["good.md", "inside-link.md"]
    reasons = {s.rel: s.reason for s in skipped}
    assert reasons["empty.txt"] == "empty file"
    assert reasons["huge.txt"].startswith("too large (21.0 MB > 20 MB limit)")
    assert "unsupported file type '.png'" in reasons["image.png"]
    assert reasons["link.md"].startswith("symlink leads outside the KB folder")
    assert reasons["linked-dir"].startswith("symlink leads outside the KB folder")
    assert reasons["dangling.md"] == "broken symlink"
    assert str(skipped[0]).startswith("skipped ")
