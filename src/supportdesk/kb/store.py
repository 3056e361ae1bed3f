"""Persisted index generations: FAISS files plus a signed manifest, swapped atomically.

Layout under ``<data_dir>/index``::

    CURRENT              name of the generation being served (replaced with os.replace)
    .key                 per-data-dir secret used to sign manifests (mode 0600)
    gen-<stamp>/         index.faiss, index.pkl (LangChain's pickled docstore), manifest.json

LangChain's FAISS docstore is a pickle, and unpickling runs code. So a generation is only
loaded when its manifest carries a valid HMAC made with this data dir's key *and* the files'
sha256 match the manifest. A foreign or tampered file is refused before ``pickle`` sees it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from langchain_community.vectorstores import FAISS
from langchain_community.vectorstores.utils import DistanceStrategy
from langchain_core.embeddings import Embeddings

from supportdesk.kb.files import sha256_file

MANIFEST = "manifest.json"
CURRENT = "CURRENT"
FORMAT = 1
INDEX_FILES = ("index.faiss", "index.pkl")


class IndexIntegrityError(RuntimeError):
    """A persisted index that this app did not write, or that changed since: never unpickled."""


def cosine_relevance(score: float) -> float:
    """Inner product of normalised vectors is cosine; show it in [0, 1]."""
    return max(0.0, min(1.0, float(score)))


def new_vectorstore(embedder: Embeddings, dim: int) -> FAISS:
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore

    return FAISS(
        embedding_function=embedder,
        index=faiss.IndexFlatIP(dim),
        docstore=InMemoryDocstore(),
        index_to_docstore_id={},
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        relevance_score_fn=cosine_relevance,
    )


def clone_vectorstore(store: FAISS) -> FAISS:
    """A deep copy to edit while the original keeps serving searches."""
    import faiss
    from langchain_community.docstore.in_memory import InMemoryDocstore

    return FAISS(
        embedding_function=store.embedding_function,
        index=faiss.clone_index(store.index),
        docstore=InMemoryDocstore(dict(store.docstore._dict)),  # type: ignore[attr-defined]
        index_to_docstore_id=dict(store.index_to_docstore_id),
        distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
        relevance_score_fn=cosine_relevance,
    )


class GenerationStore:
    """Reads and writes index generations under one folder."""

    keep_generations = 2

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- signing -------------------------------------------------------------------------
    def _key(self) -> bytes:
        path = self.root / ".key"
        if not path.exists():
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
            os.replace(tmp, path)
        return path.read_bytes()

    def _sign(self, manifest: dict[str, Any]) -> str:
        body = json.dumps({k: v for k, v in manifest.items() if k != "signature"}, sort_keys=True).encode()
        return hmac.new(self._key(), body, hashlib.sha256).hexdigest()

    # -- reading -------------------------------------------------------------------------
    def current_dir(self) -> Path | None:
        pointer = self.root / CURRENT
        if not pointer.exists():
            return None
        name = pointer.read_text().strip()
        if not name.startswith("gen-") or "/" in name:
            raise IndexIntegrityError(f"{pointer} names '{name}', which is not an index generation")
        return self.root / name

    def read_manifest(self, gen_dir: Path) -> dict[str, Any]:
        """The verified manifest of a generation, or ``IndexIntegrityError`` saying what is wrong."""
        path = gen_dir / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError as exc:
            raise IndexIntegrityError(f"{path} is missing: this folder was not written by supportdesk") from exc
        except (OSError, ValueError) as exc:
            raise IndexIntegrityError(f"{path} is not a readable manifest ({exc})") from exc
        if manifest.get("format") != FORMAT:
            raise IndexIntegrityError(f"{path} has format {manifest.get('format')!r}, expected {FORMAT}")
        signature = str(manifest.get("signature", ""))
        if not hmac.compare_digest(signature, self._sign(manifest)):
            raise IndexIntegrityError(
                f"{path} is not signed by this data dir: refusing to load an index written elsewhere or edited by hand"
            )
        for name in INDEX_FILES:
            expected = manifest.get("checksums", {}).get(name)
            actual = sha256_file(gen_dir / name) if (gen_dir / name).exists() else None
            if expected is None or actual != expected:
                raise IndexIntegrityError(
                    f"{gen_dir / name} does not match its manifest checksum: refusing to unpickle a changed file"
                )
        return manifest

    def load(self, gen_dir: Path, embedder: Embeddings) -> tuple[FAISS, dict[str, Any]]:
        manifest = self.read_manifest(gen_dir)  # raises before anything is unpickled
        store = FAISS.load_local(
            str(gen_dir),
            embedder,
            allow_dangerous_deserialization=True,  # safe: checksummed and signed above
            distance_strategy=DistanceStrategy.MAX_INNER_PRODUCT,
            relevance_score_fn=cosine_relevance,
        )
        return store, manifest

    # -- writing -------------------------------------------------------------------------
    def write(self, store: FAISS, manifest: dict[str, Any]) -> Path:
        """Save a new generation aside, then point CURRENT at it in one rename."""
        self.root.mkdir(parents=True, exist_ok=True)
        now = time.time_ns()  # sortable names: seconds, then the nanosecond fraction
        name = f"gen-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now / 1e9))}-{now % 1_000_000_000:09d}"
        staging = self.root / f".staging-{name}"
        try:
            store.save_local(str(staging))
            manifest = dict(manifest, format=FORMAT, generation=name)
            manifest["checksums"] = {f: sha256_file(staging / f) for f in INDEX_FILES}
            manifest["signature"] = self._sign(manifest)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            final = self.root / name
            os.replace(staging, final)
            pointer_tmp = self.root / f".{CURRENT}.tmp{os.getpid()}"
            pointer_tmp.write_text(name + "\n")
            os.replace(pointer_tmp, self.root / CURRENT)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._prune(keep=final)
        return final

    def _prune(self, keep: Path) -> None:
        generations = sorted((p for p in self.root.glob("gen-*") if p.is_dir()), key=lambda p: p.name)
        stale = [p for p in generations if p != keep][: max(0, len(generations) - self.keep_generations)]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)
        for leftover in self.root.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
