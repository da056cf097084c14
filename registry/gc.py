"""Garbage collection of blobs no manifest (of a model or a dataset) refers to (never by age
alone): a function over a :class:`~registry.store.Store`."""

from __future__ import annotations

import time

from registry import layout
from registry.catalog import model_digests
from registry.datasets import dataset_digests
from registry.store import Store
from softmax_core.errors import InvalidInputError


def collect(store: Store, *, grace_seconds: float = 3600.0, dry_run: bool = False) -> list[str]:
    """Delete blobs no manifest refers to and older than ``grace_seconds``; return their keys.

    Order matters: blobs are listed before manifests, so a blob whose manifest appears
    meanwhile is seen as referenced; each candidate's age is checked again just before
    it is deleted, so a blob re-uploaded by a publisher in the meantime is kept. Every
    manifest is read; one that cannot be read might refer to any blob, so it stops gc
    (CorruptObjectError) instead of being skipped.
    """
    if grace_seconds < 0:
        raise InvalidInputError(f"grace period {grace_seconds} s is negative")
    blobs = list(store.list_info(layout.BLOBS))
    referenced = model_digests(store) | dataset_digests(store)
    cutoff = time.time() - grace_seconds
    doomed = []
    for info in blobs:
        digest = layout.digest_of_blob_key(info.key)
        if digest is None or digest in referenced or info.last_modified > cutoff:
            continue
        if dry_run:
            doomed.append(info.key)
            continue
        fresh = store.head(info.key)
        if fresh is None or fresh.last_modified > time.time() - grace_seconds:
            continue
        store.delete(info.key)
        doomed.append(info.key)
    if not dry_run:
        store.sweep(cutoff)
    return doomed
