"""The registry protocol, written once on top of any :class:`~registry.store.Store`.

publish
    1. put the model file bytes at ``blobs/sha256/<digest>.npz`` (content-addressed);
    2. claim the next version: list ``versions/``, write ``<n>.json`` only-if-absent;
       on a conflict try the next number (after a few, list again; bounded);
    3. check the blob is still there (a concurrent gc) and re-upload it if not;
    4. when the version completes a range of 100, write that range's index page;
    5. optionally promote an alias.
    The version becomes visible at step 2, after its blob exists: a crash before it leaves
    at worst an unreferenced blob, which gc removes after the grace period.
aliases
    ``aliases/<alias>.json`` is moved by compare-and-swap (read with ETag, write if-match,
    create only-if-absent); every move gets a sequence number and its own write-once
    history entry ``aliases/<alias>.log/<seq>.json``. Rollback pops the ``previous`` stack.
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

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from registry import layout
from registry.manifest import AliasRecord, Manifest, index_page_bytes, parse_index_page
from registry.names import parse_ref, validate_name
from registry.store import Store, open_store
from softmax_core.errors import (
    CorruptObjectError,
    IntegrityError,
    InvalidInputError,
    InvalidNameError,
    ModelNotFoundError,
    ObjectNotFoundError,
    PreconditionFailedError,
    StorageError,
)
from softmax_core.modelfile import ModelFile

log = logging.getLogger(__name__)

MAX_CLAIM_ATTEMPTS = 100
MAX_CAS_ATTEMPTS = 100
MAX_PREVIOUS = 100  # alias rollback depth kept in the record; the log keeps everything


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, min(0.5, 0.005 * 2 ** min(attempt, 7))))


@dataclass(frozen=True)
class PullResult:
    manifest: Manifest
    path: Path
    cached: bool  # True: served from the local cache, nothing downloaded


class Registry:
    """Versioned, verifiable model storage on a local folder or an S3 bucket."""

    def __init__(self, store: Store, *, cache_dir: Path, uri: str | None = None) -> None:
        self.store = store
        self.cache_dir = Path(cache_dir).expanduser()
        self.uri = uri or store.uri

    @classmethod
    def open(cls, uri: str, *, endpoint_url: str | None = None, cache_dir: Path) -> Registry:
        """A registry at a folder, ``file:///path`` or ``s3://bucket/prefix``."""
        store = open_store(uri, endpoint_url=endpoint_url)
        return cls(store, cache_dir=cache_dir)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- reading ----------------------------------------------------------------------
    def models(self) -> list[str]:
        """Names of the models with at least one version, sorted."""
        return sorted(n for n in self.store.children(layout.MODELS) if _is_name(n))

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
        known, damaged = self._read_index(name, {layout.page_of(n) for n in listed})
        found: dict[int, tuple[str, Manifest]] = {}
        missing = []
        for n, etag in listed.items():
            hit = known.get(n)
            if hit is not None and etag is not None and hit[0] == etag:
                found[n] = hit
            else:
                missing.append(n)
        keys = [layout.manifest_key(name, n) for n in missing]
        for n, key, got in zip(missing, keys, self.store.get_many(keys), strict=True):
            if got is not None:  # None: deleted by hand since the listing
                found[n] = (listed[n] or got[1], self._parse_manifest(got[0], name, n, key))
        self._write_index(name, found, {layout.page_of(n) for n in missing}, max(listed), damaged)
        return [found[n][1] for n in sorted(found)]

    def _read_index(
        self, name: str, pages: set[int]
    ) -> tuple[dict[int, tuple[str, Manifest]], dict[int, str]]:
        """Entries of the index pages wanted, and the ETags of damaged pages (to replace)."""
        prefix = layout.index_prefix(name)
        present = {layout.number_of(k, prefix) for k in self.store.list_keys(prefix)}
        wanted = [p for p in sorted(pages) if p in present]
        keys = [layout.index_key(name, p) for p in wanted]
        known: dict[int, tuple[str, Manifest]] = {}
        damaged: dict[int, str] = {}
        for page, key, got in zip(wanted, keys, self.store.get_many(keys), strict=True):
            if got is None:
                continue
            try:
                known.update(parse_index_page(got[0], name=name, where=f"{self.uri}/{key}"))
            except CorruptObjectError as e:  # only a cache: fall back to the manifests
                log.warning("ignoring a damaged index page: %s", e)
                damaged[page] = got[1]
        return known, damaged

    def _write_index(
        self,
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
            entries = [
                found[n] for n in range(page * size + 1, (page + 1) * size + 1) if n in found
            ]
            if not entries:
                continue
            body = index_page_bytes(name, page, entries)
            try:
                if page in damaged:
                    self.store.put(layout.index_key(name, page), body, if_match=damaged[page])
                else:
                    self.store.put(layout.index_key(name, page), body, if_none_match=True)
            except PreconditionFailedError:
                pass  # another reader wrote it (a stale page is detected by its ETags)
            except StorageError as e:  # e.g. read-only credentials: listings stay correct
                log.debug("could not write index page %d of %s: %s", page, name, e)

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
            if _is_name(alias):
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
            data = _read_model_file(Path(model))
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
        numbers = self.version_numbers(name)
        n = (numbers[-1] if numbers else 0) + 1
        for attempt in range(MAX_CLAIM_ATTEMPTS):
            manifest = dataclasses.replace(draft, version=n, created=_now())
            body = manifest.to_bytes()
            key = layout.manifest_key(name, n)
            try:
                self.store.put(key, body, if_none_match=True)
                return manifest
            except PreconditionFailedError as e:
                if _after_retry(e) and self._is_ours(key, body):  # our write, response lost
                    return manifest
            if attempt < 4:
                n += 1  # someone took n: the next number is the likely winner
            else:  # far behind (or a crowd): look again, and spread out
                numbers = self.version_numbers(name)
                n = max(n + 1, (numbers[-1] if numbers else 0) + 1)
                _backoff(attempt)
        raise StorageError(
            f"could not claim a version of {name!r} in {self.uri} after {MAX_CLAIM_ATTEMPTS} "
            "attempts: too many concurrent publishers; try again"
        )

    def _is_ours(self, key: str, body: bytes) -> bool:
        try:
            current, _ = self.store.get(key)
        except ObjectNotFoundError:
            return False
        return current == body

    # --- aliases ----------------------------------------------------------------------
    def promote(self, name: str, version: int, alias: str) -> AliasRecord:
        """Point ``name@alias`` at ``version`` (compare-and-swap; recorded in the history)."""
        validate_name("model name", name)
        validate_name("alias", alias)
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise InvalidNameError(f"version {version!r} is not a positive whole number")
        if self.store.head(layout.manifest_key(name, version)) is None:
            raise self._no_version(name, version)

        def move(current: AliasRecord | None) -> AliasRecord | None:
            if current is not None and current.version == version:
                return None  # already there: nothing to record
            previous = (*current.previous, current.version) if current else ()
            return AliasRecord(
                name=name,
                alias=alias,
                version=version,
                previous=previous[-MAX_PREVIOUS:],
                seq=(current.seq + 1) if current else 1,
                moved_at=_now(),
                move_id=uuid.uuid4().hex,
                action="promote",
                from_version=current.version if current else None,
            )

        return self._move_alias(name, alias, move)

    def rollback(self, name: str, alias: str) -> AliasRecord:
        """Move ``name@alias`` back to the version it pointed to before its last move."""
        validate_name("model name", name)
        validate_name("alias", alias)

        def move(current: AliasRecord | None) -> AliasRecord | None:
            if current is None:
                raise self._no_alias(name, alias)
            if not current.previous:
                raise ModelNotFoundError(
                    f"{name}@{alias} has no earlier version to roll back to "
                    f"(it points to {name}:{current.version}, its first target)"
                )
            return AliasRecord(
                name=name,
                alias=alias,
                version=current.previous[-1],
                previous=current.previous[:-1],
                seq=current.seq + 1,
                moved_at=_now(),
                move_id=uuid.uuid4().hex,
                action="rollback",
                from_version=current.version,
            )

        return self._move_alias(name, alias, move)

    def _move_alias(self, name: str, alias: str, move: Any) -> AliasRecord:
        key = layout.alias_key(name, alias)
        for attempt in range(MAX_CAS_ATTEMPTS):
            try:
                data, etag = self.store.get(key)
                current: AliasRecord | None = self._parse_alias(data, name, alias, key)
            except ObjectNotFoundError:
                current, etag = None, None
            if current is not None:
                self._ensure_logged(current)  # heal a move whose history write was lost
            new = move(current)
            if new is None:
                assert current is not None
                return current
            body = new.to_bytes()
            try:
                if etag is None:
                    self.store.put(key, body, if_none_match=True)
                else:
                    self.store.put(key, body, if_match=etag)
            except PreconditionFailedError as e:
                if not (_after_retry(e) and self._is_ours(key, body)):
                    _backoff(attempt)
                    continue
            self._ensure_logged(new)
            return new
        raise StorageError(
            f"could not move {name}@{alias} in {self.uri} after {MAX_CAS_ATTEMPTS} attempts: "
            "too many concurrent moves; try again"
        )

    def _ensure_logged(self, record: AliasRecord) -> None:
        key = layout.alias_log_key(record.name, record.alias, record.seq)
        with contextlib.suppress(
            PreconditionFailedError
        ):  # already there: written once, by CAS order
            self.store.put(key, record.to_bytes(), if_none_match=True)

    # --- pulling ----------------------------------------------------------------------
    def blob_cache_path(self, digest: str) -> Path:
        return self.cache_dir / "blobs" / "sha256" / f"{layout.validate_digest(digest)}.npz"

    def fetch(self, ref: str) -> PullResult:
        """Resolve and download (or find in the cache) a model; the bytes are verified."""
        manifest = self.resolve(ref)
        path, cached, _ = self._fetch_blob(manifest)
        return PullResult(manifest=manifest, path=path, cached=cached)

    def pull(self, ref: str) -> tuple[Manifest, Path]:
        """``(manifest, path of the verified model file in the local cache)``."""
        result = self.fetch(ref)
        return result.manifest, result.path

    def load(self, ref: str) -> tuple[Manifest, ModelFile]:
        """Resolve, pull, verify and parse (``allow_pickle=False``) a model."""
        manifest = self.resolve(ref)
        path, _, data = self._fetch_blob(manifest)
        return manifest, ModelFile.from_bytes(data, origin=f"{manifest.ref} ({path})")

    def _fetch_blob(self, manifest: Manifest) -> tuple[Path, bool, bytes]:
        path = self.blob_cache_path(manifest.digest)
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
            data, _ = self.store.get(manifest.blob_key)
        except ObjectNotFoundError:
            raise IntegrityError(
                f"{manifest.ref} refers to blob {manifest.blob_key}, which is missing from "
                f"{self.uri}; the registry is damaged (was it garbage-collected by hand?)"
            ) from None
        actual = sha256_hex(data)
        if actual != manifest.digest:
            raise IntegrityError(
                f"{manifest.ref}: blob {manifest.blob_key} in {self.uri} has sha256 {actual}, "
                f"expected {manifest.digest}; the stored bytes were altered or damaged, refusing "
                "to use them (re-publish the model or restore the blob)"
            )
        _atomic_write(path, data)
        return path, False, data

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
        # Every manifest of every model; one we cannot read might refer to any blob, so a
        # damaged manifest stops gc (CorruptObjectError) instead of being skipped.
        digests: set[str] = set()
        for name in self.models():
            try:
                digests.update(m.digest for m in self.versions(name))
            except ModelNotFoundError:
                continue  # a model folder without versions (only debris)
        return digests

    # --- helpers ----------------------------------------------------------------------
    def _parse_manifest(self, data: bytes, name: str, version: int, key: str) -> Manifest:
        where = f"{self.uri}/{key}"
        m = Manifest.from_bytes(data, where=where)
        if m.name != name or m.version != version:
            raise CorruptObjectError(f"{where} claims to be {m.ref}, expected {name}:{version}")
        return m

    def _parse_alias(self, data: bytes, name: str, alias: str, key: str) -> AliasRecord:
        where = f"{self.uri}/{key}"
        rec = AliasRecord.from_bytes(data, where=where)
        if rec.name != name or rec.alias != alias:
            raise CorruptObjectError(f"{where} claims to be {rec.ref}, expected {name}@{alias}")
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
            f"model {name!r} has no version {version} in {self.uri}; it has {_span(numbers)}"
        )

    def _no_alias(self, name: str, alias: str) -> ModelNotFoundError:
        if not self.version_numbers(name):
            return self._no_model(name)
        known = sorted(self.aliases(name))
        hint = f"its aliases: {', '.join(known)}" if known else "it has no aliases yet"
        return ModelNotFoundError(f"model {name!r} has no alias {alias!r} in {self.uri}; {hint}")


def _after_retry(e: PreconditionFailedError) -> bool:
    return bool(getattr(e, "after_retry", False))


def _is_name(value: str) -> bool:
    try:
        validate_name("name", value)
    except InvalidNameError:
        return False
    return True


def _span(numbers: Sequence[int]) -> str:
    if len(numbers) == 1:
        return f"version {numbers[0]}"
    if numbers[-1] - numbers[0] + 1 == len(numbers):
        return f"versions {numbers[0]}..{numbers[-1]}"
    return "versions " + ", ".join(map(str, numbers[:20])) + (" ..." if len(numbers) > 20 else "")


def _read_model_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        from softmax_core.errors import DataNotFoundError

        raise DataNotFoundError(f"model file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidInputError(
            f"model file {path} is a directory, expected an .npz file"
        ) from None
    except OSError as e:
        raise InvalidInputError(f"cannot read model file {path}: {e}") from e


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise StorageError(f"cannot write the model cache {path}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)
