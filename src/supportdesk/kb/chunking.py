"""Heading-aware chunking: every chunk knows the document, headings and (PDF) page it came from.

Markdown headings split first (LangChain's ``MarkdownHeaderTextSplitter``), then long sections
are cut by ``RecursiveCharacterTextSplitter`` at paragraph / sentence boundaries. The heading
path is kept in metadata and prepended to the text that gets embedded and BM25-indexed, so a
chunk deep inside "Returns > Opened items" still matches a query about returns.
"""

from __future__ import annotations

import hashlib
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
            for piece in body_splitter.split_text(section.page_content):
                text = piece.strip()
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
