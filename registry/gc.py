"""Garbage collection of blobs no manifest (of a model or a dataset) refers to (never by age
alone)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from registry import layout
from registry.manifest import Manifest
from registry.store import Store
from softmax_core.errors import (
    InvalidInputError,
)


class GarbageCollection:
    """The gc half of :class:`registry.core.Registry` (a mixin over its store)."""

    store: Store
    uri: str

    if TYPE_CHECKING:

        def models(self) -> list[str]: ...
        def versions(self, name: str) -> list[Manifest]: ...
        def version_numbers(self, name: str) -> list[int]: ...
        def _parse_manifest(self, data: bytes, name: str, version: int, key: str) -> Manifest: ...
        def _dataset_digests(self) -> set[str]: ...

    # --- garbage collection -----------------------------------------------------------
    def gc(self, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> list[str]:
        """Delete blobs no manifest refers to and older than ``grace_seconds``; return their keys.

        Order matters: blobs are listed before manifests, so a blob whose manifest appears
        meanwhile is seen as referenced; each candidate's age is checked again just before
        it is deleted, so a blob re-uploaded by a publisher in the meantime is kept.
        """
        if grace_seconds < 0:
            raise InvalidInputError(f"grace period {grace_seconds} s is negative")
        blobs = list(self.store.list_info(layout.BLOBS))
        referenced = self._referenced_digests()
        cutoff = time.time() - grace_seconds
        doomed = []
        for info in blobs:
            digest = layout.digest_of_blob_key(info.key)
            if digest is None or digest in referenced or info.last_modified > cutoff:
                continue
            if dry_run:
                doomed.append(info.key)
                continue
            fresh = self.store.head(info.key)
            if fresh is None or fresh.last_modified > time.time() - grace_seconds:
                continue
            self.store.delete(info.key)
            doomed.append(info.key)
        if not dry_run:
            self.store.sweep(cutoff)
        return doomed

    def _referenced_digests(self) -> set[str]:
        # Every manifest of every model and dataset; one we cannot read might refer to any blob, so a
        # damaged manifest stops gc (CorruptObjectError) instead of being skipped.
        # Read from the manifests themselves, never from the index pages (a cache that a
        # tampered or stale page could make lie).
        digests: set[str] = set()
        for name in self.models():
            numbers = self.version_numbers(name)
            keys = [layout.manifest_key(name, n) for n in numbers]
            for n, key, got in zip(numbers, keys, self.store.get_many(keys), strict=True):
                if got is not None:  # None: deleted since the listing
                    digests.add(self._parse_manifest(got[0], name, n, key).digest)
        return digests | self._dataset_digests()
