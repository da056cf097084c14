"""The registry protocol, written once on top of any :class:`~registry.store.Store`.

publish
    1. put the model file bytes at ``blobs/sha256/<digest>.npz`` (content-addressed);
    2. claim the next version: list ``versions/``, write ``<n>.json`` only-if-absent;
       on a conflict try the next number (after a few, list again; bounded);
    3. check the blob is still there (a concurrent gc) and re-upload it if not;
    4. when the version completes a range of 100, write that range's index page;
    5. tell the listeners (``registry.events``); optionally promote an alias.
    The version becomes visible at step 2, after its blob exists: a crash before it leaves
    at worst an unreferenced blob, which gc removes after the grace period.
aliases
    ``aliases/<alias>.json`` is moved by compare-and-swap (read with ETag, write if-match,
    create only-if-absent); every move gets a sequence number and its own write-once
    history entry ``aliases/<alias>.log/<seq>.json``. Rollback pops the ``previous`` stack.
    Each move that happened (not a promote to where the alias already is) is an event.
pull
    resolve the reference (alias: 2 requests; ``name:n``: 1; bare name: 2), then read the
    blob from the local content-addressed cache or download it, verify the sha256, and
    only then hand it out. A cache hit downloads nothing.
versions (listing)
    one listing of ``versions/`` (with ETags), then the write-once index pages
    ``index/<page>.json`` (copies of 100 manifests each, with the ETag each manifest had);
    an entry is used only if its ETag still matches the listing, anything else is read
    from the manifest itself. The pages are a cache: damaged or missing ones only cost
    time.
gc
    delete blobs that no manifest refers to and that are older than the grace period.

The store must make conditional writes atomic (AWS S3, MinIO, the local store do).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry import events, layout
from registry.aliases import AliasMoves, now
from registry.claim import claim_next
from registry.datasets import Datasets
from registry.events import Listener, RegistryEvent, notify
from registry.gc import GarbageCollection
from registry.index import copies_manifest, read_index, write_index
from registry.manifest import AliasRecord, Manifest, parse_versioned
from registry.names import is_name, parse_ref, span_of, validate_name
from registry.pullcache import blob_cache_path, fetch_blob, sha256_hex
from registry.reports import Reports
from registry.schemes import open_store
from registry.store import Store
from softmax_core import settings
from softmax_core.errors import (
    CorruptObjectError,
    InvalidInputError,
    ModelNotFoundError,
    ObjectNotFoundError,
    StorageError,
)
from softmax_core.modelcheck import read_model_bytes
from softmax_core.modelfile import ModelFile
from softmax_core.predictor import Classifier

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PullResult:
    manifest: Manifest
    path: Path
    cached: bool  # True: served from the local cache, nothing downloaded


class Registry(AliasMoves, Datasets, GarbageCollection, Reports):
    """Versioned, verifiable storage of models and labelled datasets on a local folder or an
    S3 bucket (datasets: ``registry.datasets``)."""

    def __init__(
        self, store: Store, *, cache_dir: Path, listeners: Sequence[Listener] = ()
    ) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir).expanduser()
        self.uri = store.uri
        self.listeners = tuple(listeners)

    @classmethod
    def open(
        cls,
        uri: str,
        *,
        endpoint_url: str | None = None,
        cache_dir: Path | None = None,
        listeners: Sequence[Listener] = (),
    ) -> Registry:
        """A registry at a folder, ``file:///path`` or ``s3://bucket/prefix``.

        ``cache_dir``: origin pulled blobs are kept (default: the user's cache folder).
        ``listeners``: called with a :class:`~registry.events.RegistryEvent` after each
        publish and alias move (``flows.events`` forwards them to Prefect).
        """
        store = open_store(uri, endpoint_url=endpoint_url)
        return cls(store, cache_dir=cache_dir or settings.default_cache_dir(), listeners=listeners)

    def _emit(self, event: RegistryEvent) -> None:
        notify(self.listeners, event)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models with at least one version, sorted."""
        self.store.check_exists()
        return sorted(n for n in self.store.children(layout.MODELS) if is_name(n))

    def version_numbers(self, name: str) -> list[int]:
        prefix = layout.versions_prefix(name)
        nums = (layout.number_of(k, prefix) for k in self.store.list_keys(prefix))
        return sorted(n for n in nums if n is not None and n >= 1)

    def versions(self, name: str) -> list[Manifest]:
        """Every version of ``name``, oldest first. ModelNotFoundError if it has none.

        Cost: one listing of the version keys, then the index pages (one GET per 100
        versions) for every version whose manifest ETag matches its index entry, and one
        GET per version that no page covers yet. Pages for full ranges of 100 are written
        (only-if-absent) as a side effect, so the next listing is cheap for everyone.
        """
        prefix = layout.versions_prefix(name)
        listed: dict[int, str | None] = {}
        for info in self.store.list_info(prefix):
            n = layout.number_of(info.key, prefix)
            if n is not None and n >= 1:
                listed[n] = info.etag
        if not listed:
            raise self._no_model(name)
        known, damaged = read_index(self.store, name, {layout.page_of(n) for n in listed})
        found: dict[int, tuple[str, Manifest]] = {}
        missing = []
        for n, etag in listed.items():
            hit = known.get(n)
            if (
                hit is not None
                and etag is not None
                and hit[0] == etag
                and copies_manifest(hit[1], etag)
            ):
                found[n] = hit
            else:
                missing.append(n)
        keys = [layout.manifest_key(name, n) for n in missing]
        for n, key, got in zip(missing, keys, self.store.get_many(keys), strict=True):
            if got is not None:  # None: deleted by hand since the listing
                found[n] = (listed[n] or got[1], self._parse_manifest(got[0], name, n, key))
        write_index(
            self.store, name, found, {layout.page_of(n) for n in missing}, max(listed), damaged
        )
        return [found[n][1] for n in sorted(found)]

    def manifest(self, name: str, version: int) -> Manifest:
        key = layout.manifest_key(name, version)
        try:
            data, _ = self.store.get(key)
        except ObjectNotFoundError:
            raise self._no_version(name, version) from None
        return self._parse_manifest(data, name, version, key)

    def resolve(self, ref: str) -> Manifest:
        """``name@alias`` | ``name:version`` | ``name`` (its newest version) -> its manifest."""
        name, alias, version = parse_ref(ref)
        if alias is not None:
            record = self.alias_record(name, alias)
            return self.manifest(name, record.version)
        if version is not None:
            return self.manifest(name, version)
        numbers = self.version_numbers(name)
        if not numbers:
            raise self._no_model(name)
        return self.manifest(name, numbers[-1])

    def alias_record(self, name: str, alias: str) -> AliasRecord:
        key = layout.alias_key(name, alias)
        try:
            data, _ = self.store.get(key)
        except ObjectNotFoundError:
            raise self._no_alias(name, alias) from None
        return self._parse_alias(data, name, alias, key)

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` for one model."""
        validate_name("model name", name)
        prefix = layout.aliases_prefix(name)
        keys = [
            k
            for k in self.store.list_keys(prefix)
            if "/" not in k[len(prefix) :] and k.endswith(".json")
        ]
        out: dict[str, int] = {}
        for key, got in zip(keys, self.store.get_many(keys), strict=True):
            if got is None:
                continue
            alias = key[len(prefix) : -len(".json")]
            if is_name(alias):
                out[alias] = self._parse_alias(got[0], name, alias, key).version
        return dict(sorted(out.items()))

    def history(self, name: str, alias: str) -> list[AliasRecord]:
        """Every recorded move of ``name@alias``, oldest first."""
        prefix = layout.alias_log_prefix(name, alias)
        keys = [k for k in self.store.list_keys(prefix) if layout.number_of(k, prefix) is not None]
        records = {
            r.seq: r
            for r in (
                self._parse_alias(got[0], name, alias, key)
                for key, got in zip(keys, self.store.get_many(keys), strict=True)
                if got is not None
            )
        }
        current = self.alias_record(name, alias)  # ModelNotFoundError when there is no alias
        records.setdefault(current.seq, current)  # its log write may have been cut short
        return [records[s] for s in sorted(records)]

    # --- publishing -------------------------------------------------------------------
    def publish(
        self,
        model: Path | str | ModelFile,
        name: str,
        *,
        alias: str | None = None,
        lineage: dict[str, Any] | None = None,
    ) -> Manifest:
        """Store a model file as the next version of ``name`` (and point ``alias`` at it)."""
        validate_name("model name", name)
        if alias is not None:
            validate_name("alias", alias)
        if isinstance(model, ModelFile):
            data = model.to_bytes()
            mf = ModelFile.from_bytes(data, origin=f"model for {name!r}")
        else:
            data = read_model_bytes(Path(model))
            mf = ModelFile.from_bytes(data, origin=str(model))
        extra_lineage = dict(lineage or {})
        try:
            json.dumps(extra_lineage)
        except (TypeError, ValueError) as e:
            raise InvalidInputError(f"lineage must be JSON-serialisable: {e}") from e

        digest = sha256_hex(data)
        blob = layout.blob_key(digest)
        self.store.put(blob, data)  # always (re)written: refreshes its age for gc, heals damage

        meta = mf.meta
        base_lineage = {"data_source": meta["data_source"]} if meta.get("data_source") else {}
        draft = Manifest(
            name=name,
            version=0,
            digest=digest,
            created="",
            data_digest=meta.get("data_digest"),
            params=dict(meta.get("params") or {}),
            metrics=dict(meta.get("metrics") or {}),
            preprocessing=dict(meta.get("preprocessing") or {"steps": list(mf.steps)}),
            input_schema=dict(meta.get("input_schema") or {}),
            code_version=meta.get("code_version"),
            lineage={**base_lineage, **extra_lineage},
            size=len(data),
            model_created=meta.get("created"),
        )
        manifest = self._claim_version(draft)

        # A gc that listed before our blob write could have deleted the (old, orphaned)
        # blob after it: make sure the version we just made visible has its bytes.
        info = self.store.head(blob)
        if info is None or info.size != len(data):
            log.warning("blob %s vanished during publish (concurrent gc?); uploading again", blob)
            self.store.put(blob, data)

        if manifest.version % layout.INDEX_PAGE == 0:
            self._close_index_page(name)
        self._emit(events.published(self.uri, manifest))
        if alias is not None:
            self.promote(name, manifest.version, alias)
        return manifest

    def _close_index_page(self, name: str) -> None:
        """This version completed a range of 100: write its index page (best effort)."""
        try:
            self.versions(name)  # writes the pages of every completed range it had to read
        except (StorageError, ModelNotFoundError) as e:
            log.debug("could not write the index of %s: %s", name, e)

    def _claim_version(self, draft: Manifest) -> Manifest:
        name = draft.name
        return claim_next(
            self.store,
            what=repr(name),
            numbers=lambda: self.version_numbers(name),
            key_of=lambda n: layout.manifest_key(name, n),
            make=lambda n: dataclasses.replace(draft, version=n, created=now()),
        )

    # --- pulling ----------------------------------------------------------------------
    def blob_cache_path(self, digest: str) -> Path:
        return blob_cache_path(self.cache_dir, digest)

    def fetch(self, ref: str) -> PullResult:
        """Resolve and download (or find in the cache) a model; the bytes are verified."""
        manifest = self.resolve(ref)
        path, cached, _ = fetch_blob(self.store, self.cache_dir, manifest)
        return PullResult(manifest=manifest, path=path, cached=cached)

    def pull(self, ref: str) -> tuple[Manifest, Path]:
        """``(manifest, path of the verified model file in the local cache)``."""
        result = self.fetch(ref)
        return result.manifest, result.path

    def load(self, ref: str) -> tuple[Manifest, ModelFile]:
        """Resolve, pull, verify and parse (``allow_pickle=False``) a model."""
        manifest = self.resolve(ref)
        path, _, data = fetch_blob(self.store, self.cache_dir, manifest)
        return manifest, ModelFile.from_bytes(data, origin=f"{manifest.ref} ({path})")

    def classifier(self, ref: str) -> Classifier:
        """``ref`` (``mnist@champion``, ``mnist:3``) pulled, verified and ready to predict."""
        manifest, model = self.load(ref)
        return Classifier(model, ref=manifest.ref)

    # --- helpers ----------------------------------------------------------------------
    def _parse_manifest(self, data: bytes, name: str, version: int, key: str) -> Manifest:
        return parse_versioned(
            Manifest, data, name=name, version=version, origin=f"{self.uri}/{key}"
        )

    def _parse_alias(self, data: bytes, name: str, alias: str, key: str) -> AliasRecord:
        origin = f"{self.uri}/{key}"
        rec = AliasRecord.from_bytes(data, origin=origin)
        if rec.name != name or rec.alias != alias:
            raise CorruptObjectError(f"{origin} claims to be {rec.ref}, expected {name}@{alias}")
        return rec

    def _no_model(self, name: str) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"no model named {name!r} in {self.uri}; `softmax-pipe registry list` shows the models"
        )

    def _no_version(self, name: str, version: int) -> ModelNotFoundError:
        numbers = self.version_numbers(name)
        if not numbers:
            return self._no_model(name)
        return ModelNotFoundError(
            f"model {name!r} has no version {version} in {self.uri}; it has {span_of(numbers)}"
        )

    def _no_alias(self, name: str, alias: str) -> ModelNotFoundError:
        if not self.version_numbers(name):
            return self._no_model(name)
        known = sorted(self.aliases(name))
        hint = f"its aliases: {', '.join(known)}" if known else "it has no aliases yet"
        return ModelNotFoundError(f"model {name!r} has no alias {alias!r} in {self.uri}; {hint}")
