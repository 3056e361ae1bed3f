"""Find the documents of a KB folder and decide, cheaply, which ones can be indexed.

Every rejected file gets one reason a person can act on; nothing here raises for bad input.
"""

from __future__ import annotations

import os
import stat as stat_mod
from dataclasses import dataclass
from pathlib import Path

from supportdesk.sanitize import has_undecodable, safe_name

SUPPORTED_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".html": "html", ".htm": "html", ".pdf": "pdf"}


@dataclass(frozen=True)
class SourceFile:
    """A candidate document: its path relative to the KB root and what it looks like on disk."""

    path: Path
    rel: str
    kind: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Skipped:
    """A file left out of the index, and why."""

    rel: str
    reason: str

    def __str__(self) -> str:
        return f"skipped {self.rel}: {self.reason}"


def scan(kb_dir: Path, max_bytes: int) -> tuple[list[SourceFile], list[Skipped]]:
    """Walk ``kb_dir`` and sort files into indexable candidates and skipped ones.

    Content checks that need the bytes (binary, encoding) happen in the loaders; here we
    only use what ``stat`` and the path tell us, so an unchanged KB is scanned in milliseconds.
    """
    root = kb_dir.resolve()
    found: list[SourceFile] = []
    skipped: list[Skipped] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        # Symlinked folders are not followed by os.walk; report the ones that leave the KB.
        for name in list(dirnames):
            link = here / name
            if link.is_symlink():
                target = link.resolve()
                if not target.is_relative_to(root):
                    skipped.append(Skipped(safe_name(_rel(link, root)),
                                           f"symlink leads outside the KB folder (to {safe_name(str(target))})"))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            rel = _rel(path, root)
            if has_undecodable(rel):
                skipped.append(Skipped(safe_name(rel), "file name is not valid UTF-8: rename the file"))
                continue
            rel = safe_name(rel)  # control characters in a name never reach a terminal raw
            kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
            if kind is None:
                skipped.append(Skipped(rel, f"unsupported file type '{safe_name(path.suffix) or '(none)'}' (use .md .txt .html .pdf)"))
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_relative_to(root):
                    skipped.append(Skipped(rel, f"symlink leads outside the KB folder (to {safe_name(str(target))})"))
                    continue
                if not target.exists():
                    skipped.append(Skipped(rel, "broken symlink"))
                    continue
            try:
                stat = path.stat()
            except OSError as exc:
                skipped.append(Skipped(rel, f"cannot read: {exc.strerror or exc}"))
                continue
            if not stat_mod.S_ISREG(stat.st_mode):
                skipped.append(Skipped(rel, "not a regular file"))
                continue
            if not os.access(path, os.R_OK):
                skipped.append(Skipped(rel, "cannot read: permission denied"))
                continue
            if stat.st_size == 0:
                skipped.append(Skipped(rel, "empty file"))
                continue
            if stat.st_size > max_bytes:
                skipped.append(
                    Skipped(rel, f"too large ({stat.st_size / 1e6:.1f} MB > {max_bytes / 1e6:.0f} MB limit)")
                )
                continue
            found.append(SourceFile(path, rel, kind, stat.st_size, stat.st_mtime_ns))
    return found, skipped


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
