"""Runtime state is private: customer conversations, the index and datasets are nobody else's.

The data dir is ``0700`` and every file supportdesk writes into it ``0600``, whatever the
process umask. Folders that already exist with wider modes are narrowed when we own them.
"""

from __future__ import annotations

import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents ``0700``; narrow the leaf if this user owns it."""
    missing = []
    for folder in [path, *path.parents]:
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=DIR_MODE, exist_ok=True)
        _narrow(folder, DIR_MODE)  # mkdir's mode is filtered by the umask
    _narrow(path, DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make an existing file ``0600`` if this user owns it."""
    _narrow(path, FILE_MODE)
    return path


def private_tree(root: Path) -> None:
    """``0700`` folders and ``0600`` files below ``root`` (a freshly written generation, a dataset)."""
    _narrow(root, DIR_MODE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            _narrow(Path(dirpath) / name, DIR_MODE)
        for name in filenames:
            _narrow(Path(dirpath) / name, FILE_MODE)


def write_private_text(path: Path, text: str) -> None:
    """Write a file created ``0600`` from the start (no window where it is world-readable)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    _narrow(path, FILE_MODE)


def _narrow(path: Path, mode: int) -> None:
    try:
        info = path.stat()
        if info.st_uid == os.getuid() and (info.st_mode & 0o777) != mode:
            os.chmod(path, mode)
    except OSError:
        pass  # not ours, or gone: nothing to narrow
