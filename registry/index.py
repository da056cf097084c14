"""Index pages: copies of 100 manifests each, a cache that makes listing versions cheap.

``models/<name>/index/<page>.json`` holds the manifests of versions ``100p+1..100p+100``
with the ETag each manifest had when copied. A page is only a cache: an entry is used
only while its manifest's ETag (from the listing) still matches, a damaged page is
ignored and rewritten, and gc never reads pages (it reads the manifests).
"""

from __future__ import annotations

import hashlib
import logging

from registry import layout
from registry.manifest import Manifest, index_page_bytes, parse_index_page
from registry.store import Store
from softmax_core.errors import (
    CorruptObjectError,
    PermissionDeniedError,
    PreconditionFailedError,
    StorageError,
)

log = logging.getLogger(__name__)


def read_index(
    store: Store, name: str, pages: set[int]
) -> tuple[dict[int, tuple[str, Manifest]], dict[int, str]]:
    """Entries of the index pages wanted, and the ETags of damaged pages (to replace)."""
    prefix = layout.index_prefix(name)
    present = {layout.number_of(k, prefix) for k in store.list_keys(prefix)}
    wanted = [p for p in sorted(pages) if p in present]
    keys = [layout.index_key(name, p) for p in wanted]
    known: dict[int, tuple[str, Manifest]] = {}
    damaged: dict[int, str] = {}
    for page, key, got in zip(wanted, keys, store.get_many(keys), strict=True):
        if got is None:
            continue
        try:
            known.update(parse_index_page(got[0], name=name, origin=f"{store.uri}/{key}"))
        except CorruptObjectError as e:  # only a cache: fall back to the manifests
            log.warning("ignoring a damaged index page: %s", e)
            damaged[page] = got[1]
    return known, damaged


def write_index(
    store: Store,
    name: str,
    found: dict[int, tuple[str, Manifest]],
    pages: set[int],
    top: int,
    damaged: dict[int, str],
) -> None:
    """Write index pages for full ranges below the newest version (best effort)."""
    size = layout.INDEX_PAGE
    for page in sorted(pages):
        if (page + 1) * size > top:
            continue  # still open: new versions will land in it
        entries = [found[n] for n in range(page * size + 1, (page + 1) * size + 1) if n in found]
        if not entries:
            continue
        body = index_page_bytes(name, page, entries)
        try:
            if page in damaged:
                store.put(layout.index_key(name, page), body, if_match=damaged[page])
            else:
                store.put(layout.index_key(name, page), body, if_none_match=True)
        except PreconditionFailedError:
            pass  # another reader wrote it (a stale page is detected by its ETags)
        except (StorageError, PermissionDeniedError) as e:  # e.g. a read-only key: listings
            # stay correct, only slower
            log.debug("could not write index page %d of %s: %s", page, name, e)


def copies_manifest(manifest: Manifest, etag: str) -> bool:
    """Whether an index page's copy of a manifest is the manifest the listing saw: both
    stores' ETags of a manifest are the md5 of its bytes, which the copy re-serialises to.
    (A tampered page, or an ETag of another kind, makes the listing read the manifest.)"""
    return hashlib.md5(manifest.to_bytes(), usedforsecurity=False).hexdigest() == etag.strip('"')
