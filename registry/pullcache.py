"""The local pull cache: verified blobs under ``<cache>/blobs/sha256/<digest>.npz``.

A blob is served from the cache only when its bytes still hash to the manifest's digest;
a download is verified the same way before it is cached (atomically) or used. A
mismatch is an IntegrityError, never a silent load.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Protocol

from registry import layout
from registry.store import Store
from softmax_core.atomicio import atomic_write
from softmax_core.errors import IntegrityError, ObjectNotFoundError, StorageError

log = logging.getLogger(__name__)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_cache_path(cache_dir: Path, digest: str) -> Path:
    return cache_dir / "blobs" / "sha256" / f"{layout.validate_digest(digest)}.npz"


def _write_cache(path: Path, data: bytes) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot write the model cache {path}: {e.strerror or e}") from e
    atomic_write(path, data)


class BlobRef(Protocol):
    """What names a blob: a model's or a dataset's manifest."""

    @property
    def ref(self) -> str: ...
    @property
    def digest(self) -> str: ...
    @property
    def blob_key(self) -> str: ...


def fetch_blob(store: Store, cache_dir: Path, manifest: BlobRef) -> tuple[Path, bool, bytes]:
    path = blob_cache_path(cache_dir, manifest.digest)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = None
    except OSError as e:
        raise StorageError(f"cannot read the model cache {path}: {e}") from e
    if data is not None:
        if sha256_hex(data) == manifest.digest:
            return path, True, data
        log.warning("cached %s does not match its digest; downloading it again", path)
        path.unlink(missing_ok=True)
    try:
        data, _ = store.get(manifest.blob_key)
    except ObjectNotFoundError:
        raise IntegrityError(
            f"{manifest.ref} refers to blob {manifest.blob_key}, which is missing from "
            f"{store.uri}; the registry is damaged (was it garbage-collected by hand?)"
        ) from None
    actual = sha256_hex(data)
    if actual != manifest.digest:
        raise IntegrityError(
            f"{manifest.ref}: blob {manifest.blob_key} in {store.uri} has sha256 {actual}, "
            f"expected {manifest.digest}; the stored bytes were altered or damaged, refusing "
            "to use them (publish it again or restore the blob)"
        )
    _write_cache(path, data)
    return path, False, data
