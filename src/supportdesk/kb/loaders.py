"""Turn one document file into heading-marked text, whatever its format.

Every loader returns ``LoadedDocument``: a title and one or more ``Document`` parts whose text
uses Markdown ``#`` headings, so a single heading-aware splitter serves all formats. PDFs give
one part per page (``page`` in the metadata, 1-based). Bad content raises ``LoadError`` with a
reason that names the problem; the caller reports it and moves on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from langchain_core.documents import Document

from supportdesk.kb.files import SourceFile
from supportdesk.kb.normalize import unwrap
from supportdesk.sanitize import safe_name, strip_control


class LoadError(Exception):
    """A file that cannot be indexed; ``str(exc)`` is the reason shown to the user."""


@dataclass
class LoadedDocument:
    title: str
    parts: list[Document] = field(default_factory=list)


def load(source: SourceFile) -> LoadedDocument:
    loader = {"markdown": _load_markdown, "text": _load_text, "html": _load_html, "pdf": _load_pdf}[source.kind]
    try:
        raw = source.path.read_bytes()
    except OSError as exc:
        raise LoadError(f"cannot read: {exc.strerror or exc}") from exc
    doc = loader(source, raw)
    if not any(part.page_content.strip() for part in doc.parts):
        raise LoadError("no text content")
    for part in doc.parts:
        part.page_content = unwrap(part.page_content)  # a sentence is never cut at a line break
        part.metadata.setdefault("source", source.rel)
        part.metadata.setdefault("title", doc.title)
    return doc


def _decode(raw: bytes, encoding: str = "utf-8") -> str:
    if b"\x00" in raw[:8192]:
        raise LoadError("binary content (NUL bytes) in a text file")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise LoadError(
            f"not valid {encoding.upper()} (byte 0x{raw[exc.start]:02x} at line {line}); re-save the file as UTF-8"
        ) from exc
    except LookupError as exc:
        raise LoadError(f"unknown text encoding '{safe_name(encoding)}'") from exc
    except Exception as exc:
        raise LoadError(
            f"declares charset '{safe_name(encoding)}', which cannot decode it ({type(exc).__name__}); re-save it as UTF-8"
        ) from exc
    return strip_control(text.lstrip("\ufeff"))


def _title_from_name(path: Path) -> str:
    return safe_name(re.sub(r"[-_]+", " ", path.stem).strip().title())


def _first_heading(text: str) -> str | None:
    match = re.search(r"^#{1,2}\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
    return match.group(1).strip() if match else None


def _load_markdown(source: SourceFile, raw: bytes) -> LoadedDocument:
    text = _decode(raw)
    title = _first_heading(text) or _title_from_name(source.path)
    return LoadedDocument(title, [Document(page_content=text)])


_UNDERLINE = re.compile(r"^(?P<title>[^\n]+)\n(?P<bar>={3,}|-{3,})[ \t]*$", re.MULTILINE)


def text_to_markdown(text: str) -> str:
    """Plain-text docs mark headings with ``===`` / ``---`` underlines; make them ``#`` / ``##``."""

    def heading(match: re.Match[str]) -> str:
        level = "#" if match.group("bar").startswith("=") else "##"
        return f"{level} {match.group('title').strip()}"

    return _UNDERLINE.sub(heading, text)


def _load_text(source: SourceFile, raw: bytes) -> LoadedDocument:
    text = text_to_markdown(_decode(raw))
    title = _first_heading(text)
    if title is None:
        first_line = next((line.strip() for line in text.splitlines() if line.strip()), "")
        title = first_line[:80] if 0 < len(first_line) <= 80 else _title_from_name(source.path)
    return LoadedDocument(title, [Document(page_content=text)])


_HTML_BLOCKS = {"p", "pre", "blockquote", "dt", "dd", "figcaption", "address", "caption"}
_HTML_SKIP = {"script", "style", "noscript", "template", "nav", "footer", "header", "form", "svg", "head"}


def _load_html(source: SourceFile, raw: bytes) -> LoadedDocument:
    from bs4 import BeautifulSoup, NavigableString, Tag

    declared = re.search(rb"<meta[^>]+charset=[\"']?([\w-]+)", raw[:4096], re.IGNORECASE)
    text = _decode(raw, declared.group(1).decode("ascii").lower() if declared else "utf-8")
    soup = BeautifulSoup(text, "html.parser")
    lines: list[str] = []

    def inline(tag: Tag) -> str:
        return re.sub(r"\s+", " ", tag.get_text(" ", strip=True))

    def walk(node: Tag) -> None:
        for child in node.children:
            if isinstance(child, NavigableString):
                if child.strip() and type(child) is NavigableString:
                    lines.append(re.sub(r"\s+", " ", child.strip()))
                continue
            if not isinstance(child, Tag) or child.name in _HTML_SKIP:
                continue
            name = child.name
            if re.fullmatch(r"h[1-6]", name):
                lines.extend(["", "#" * int(name[1]) + " " + inline(child), ""])
            elif name in _HTML_BLOCKS:
                lines.extend([inline(child), ""])
            elif name in {"ul", "ol"}:
                for item in child.find_all("li", recursive=False):
                    lines.append("- " + inline(item))
                lines.append("")
            elif name == "table":
                for row in child.find_all("tr"):
                    cells = [inline(cell) for cell in row.find_all(["th", "td"])]
                    lines.append("| " + " | ".join(cells) + " |")
                lines.append("")
            else:
                walk(child)

    walk(soup.body or soup)
    body = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title_tag = soup.find("title")
    title = (title_tag.get_text(strip=True) if title_tag else "") or _first_heading(body) or _title_from_name(source.path)
    return LoadedDocument(strip_control(title), [Document(page_content=body)])


def _load_pdf(source: SourceFile, raw: bytes) -> LoadedDocument:
    if not raw.startswith(b"%PDF-"):
        raise LoadError("not a PDF file (missing %PDF- header)")
    from langchain_community.document_loaders import PyPDFLoader
    from pypdf.errors import PdfReadError

    try:
        pages = PyPDFLoader(str(source.path)).load()
    except (PdfReadError, ValueError, KeyError, OSError) as exc:
        raise LoadError(f"unreadable PDF: {exc}") from exc
    except Exception as exc:  # pypdf raises assorted errors on damaged files
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
    parts: list[Document] = []
    for page in pages:
        text = strip_control(page.page_content)
        parts.append(Document(page_content=text, metadata={"page": int(page.metadata.get("page", 0)) + 1}))
    meta_title = str(pages[0].metadata.get("title") or "").strip() if pages else ""
    if not any(p.page_content.strip() for p in parts):
        raise LoadError("PDF has no extractable text (scanned images?)")
    first_line = next((line.strip() for p in parts for line in p.page_content.splitlines() if line.strip()), "")
    title = meta_title or (first_line[:80] if first_line else _title_from_name(source.path))
    return LoadedDocument(strip_control(title), parts)
