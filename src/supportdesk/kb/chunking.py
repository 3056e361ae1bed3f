"""Heading-aware chunking: every chunk knows the document, headings and (PDF) page it came from.

Markdown headings split first (LangChain's ``MarkdownHeaderTextSplitter``), then long sections
are cut by ``RecursiveCharacterTextSplitter`` at paragraph / sentence boundaries. The heading
path is kept in metadata and prepended to the text that gets embedded and BM25-indexed, so a
chunk deep inside "Returns > Opened items" still matches a query about returns.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from langchain_core.documents import Document
from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from supportdesk.kb.loaders import LoadedDocument

_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3"), ("####", "h4")]


@dataclass(frozen=True)
class Chunk:
    """One retrievable piece of a document."""

    id: str
    text: str
    source: str
    title: str
    heading: str
    page: int | None
    position: int

    @property
    def indexed_text(self) -> str:
        """What the embedder and BM25 see: title and heading path, then the text."""
        if not self.heading:
            context = self.title
        elif self.heading.split(" > ")[0] == self.title:
            context = self.heading
        else:
            context = f"{self.title} > {self.heading}" if self.title else self.heading
        return f"{context}\n{self.text}" if context else self.text

    def metadata(self) -> dict[str, object]:
        return {
            "chunk_id": self.id,
            "source": self.source,
            "title": self.title,
            "heading": self.heading,
            "page": self.page,
            "position": self.position,
        }

    @classmethod
    def from_document(cls, doc: Document) -> Chunk:
        meta = doc.metadata
        return cls(
            id=str(meta["chunk_id"]),
            text=doc.page_content,
            source=str(meta["source"]),
            title=str(meta.get("title") or ""),
            heading=str(meta.get("heading") or ""),
            page=meta.get("page"),
            position=int(meta.get("position") or 0),
        )


def chunk_id(source: str, position: int, text: str) -> str:
    """Stable id: same file, place and text give the same id across rebuilds."""
    digest = hashlib.sha1(f"{source}\x00{position}\x00{text}".encode()).hexdigest()[:16]
    return f"{source}#{position}:{digest}"


_RULE = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def table_headers(text: str) -> dict[str, str]:
    """Every table row of ``text`` mapped to its table's header (the first row, and the rule
    under it when there is one)."""
    headers: dict[str, str] = {}
    header = ""
    previous = ""
    for line in text.split("\n"):
        row = line.strip()
        if not row.startswith("|"):
            header = previous = ""
            continue
        if not previous:
            header = row
        elif _RULE.match(row):
            header = f"{header}\n{row}"
        else:
            headers.setdefault(row, header)
        previous = row
    return headers


def with_table_header(piece: str, headers: dict[str, str]) -> str:
    """A chunk that starts inside a table gets the table's header row again: a row is read
    against its header ("Solid red | Hardware fault" under "Light | Meaning")."""
    first = piece.split("\n", 1)[0].strip()
    header = headers.get(first)
    return f"{header}\n{piece}" if header else piece


def split(doc: LoadedDocument, source: str, chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    header_splitter = MarkdownHeaderTextSplitter(headers_to_split_on=_HEADERS, strip_headers=True)
    body_splitter = RecursiveCharacterTextSplitter(
        chunk_size=chunk_size,
        chunk_overlap=min(chunk_overlap, chunk_size // 2),
        separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
    )
    chunks: list[Chunk] = []
    for part in doc.parts:
        page = part.metadata.get("page")
        for section in header_splitter.split_text(part.page_content):
            headings = [section.metadata[key] for _, key in _HEADERS if section.metadata.get(key)]
            heading = " > ".join(headings)
            headers = table_headers(section.page_content)
            for piece in body_splitter.split_text(section.page_content):
                text = with_table_header(piece.strip(), headers)
                if not text:
                    continue
                position = len(chunks)
                chunks.append(
                    Chunk(
                        id=chunk_id(source, position, text),
                        text=text,
                        source=source,
                        title=doc.title,
                        heading=heading,
                        page=page,
                        position=position,
                    )
                )
    return chunks
