"""Labelled datasets in the registry: the models' protocol, for data.

add
    1. read the newest version (if any) and merge the folder's items into it
       (``softmax_core.labelled.merge``: a union keyed by file sha256, new labels win);
       a new file whose picture the version holds under another label is refused
       (``labelled.refuse_two_labels``), as it is within one folder;
    2. the same content as the newest version: no new version (``AddResult.created`` False);
    3. otherwise put the arrays at ``blobs/sha256/<digest>.npz`` (content-addressed), then
       claim ``datasets/<name>/versions/<n>.json`` only-if-absent (``registry.claim``),
       then check the blob is still there (a concurrent gc) and re-upload it if not;
    4. when other adds claimed versions after step 1, add the union again (nothing lost).
pull
    resolve ``name`` (newest) or ``name:n``, read the blob from the local cache or the
    store, verify its sha256 against the manifest (``registry.pullcache``), parse it
    (``allow_pickle=False``). A tampered blob is an IntegrityError, never data.
gc
    keeps every blob a dataset version refers to (``registry.gc``).

Functions over a :class:`~registry.store.Store` (and, to pull, the local cache folder),
passed in.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

from registry import layout
from registry.claim import claim_next
from registry.manifest import DatasetManifest, parse_versioned
from registry.names import is_name, parse_dataset_ref, span_of, validate_name
from registry.objects import read_labelled
from registry.pullcache import fetch_blob, sha256_hex
from registry.store import Store
from registry.writes import now
from softmax_core import labelled
from softmax_core.errors import CorruptObjectError, ModelNotFoundError, ObjectNotFoundError
from softmax_core.labelled import Changes, Labelled
from softmax_core.scoring import is_uri

log = logging.getLogger(__name__)
MAX_CATCH_UP = 8  # bounded: each round needs yet another add to land in between


@dataclass(frozen=True)
class AddResult:
    """What ``add_dataset`` did: the version now newest, its items, and whether it made it."""

    manifest: DatasetManifest
    created: bool  # False: the data was already there, nothing was written
    changes: Changes
    data: Labelled  # the items of ``manifest``'s version


def dataset_names(store: Store) -> list[str]:
    """Names of the datasets with at least one version, sorted."""
    store.check_exists()
    names = store.children(layout.DATASETS)
    return sorted(n for n in names if is_name(n) and dataset_numbers(store, n))


def dataset_numbers(store: Store, name: str) -> list[int]:
    prefix = layout.dataset_versions_prefix(name)
    nums = (layout.number_of(k, prefix) for k in store.list_keys(prefix))
    return sorted(n for n in nums if n is not None and n >= 1)


def dataset_versions(store: Store, name: str) -> list[DatasetManifest]:
    """Every version of dataset ``name``, oldest first; ModelNotFoundError if none."""
    numbers = dataset_numbers(store, name)
    if not numbers:
        raise _no_dataset(store, name)
    keys = [layout.dataset_manifest_key(name, n) for n in numbers]
    got = store.get_many(keys)
    return [
        _parse_dataset(store, g[0], name, n, key)
        for n, key, g in zip(numbers, keys, got, strict=True)
        if g is not None
    ]


def dataset_manifest(store: Store, name: str, version: int) -> DatasetManifest:
    key = layout.dataset_manifest_key(name, version)
    try:
        data, _ = store.get(key)
    except ObjectNotFoundError:
        numbers = dataset_numbers(store, name)
        if not numbers:
            raise _no_dataset(store, name) from None
        raise ModelNotFoundError(
            f"dataset {name!r} has no version {version} in {store.uri}; it has {span_of(numbers)}"
        ) from None
    return _parse_dataset(store, data, name, version, key)


def resolve_dataset(store: Store, ref: str) -> DatasetManifest:
    """``name`` (its newest version) or ``name:version`` -> its manifest."""
    name, version = parse_dataset_ref(ref)
    if version is None:
        numbers = dataset_numbers(store, name)
        if not numbers:
            raise _no_dataset(store, name)
        version = numbers[-1]
    return dataset_manifest(store, name, version)


def load_dataset(store: Store, cache_dir: Path, ref: str) -> tuple[DatasetManifest, Labelled]:
    """Resolve, pull (verified against the manifest's sha256) and parse a dataset."""
    manifest = resolve_dataset(store, ref)
    path, _, data = fetch_blob(store, cache_dir, manifest)
    data_set = Labelled.from_bytes(data, origin=f"{manifest.ref} ({path})")
    if data_set.content_digest() != manifest.content or len(data_set) != manifest.count:
        raise CorruptObjectError(f"{manifest.ref}: its blob does not hold what it claims")
    return manifest, data_set


def add_dataset(
    store: Store, cache_dir: Path, name: str, data: Labelled, *, _depth: int = 0
) -> AddResult:
    """Merge ``data`` into the newest version of ``name``; a new version if it changed.

    Concurrent adds never lose each other's images: one that finds others claimed
    versions after it read the newest adds their union once more (``_catch_up``)."""
    validate_name("dataset name", name)
    from softmax_core.version import code_version

    numbers = dataset_numbers(store, name)
    previous = load_dataset(store, cache_dir, f"{name}:{numbers[-1]}") if numbers else None
    merged, changes = labelled.merge(previous[1] if previous else None, data)
    if previous is not None and _depth == 0:  # this add's new files against the version's
        labelled.refuse_two_labels(merged, previous=(previous[0].ref, previous[1]))
    content = merged.content_digest()
    if previous is not None and previous[0].content == content:
        return AddResult(previous[0], created=False, changes=changes, data=merged)
    blob = merged.to_bytes()
    digest = sha256_hex(blob)
    store.put(layout.blob_key(digest), blob)
    holdout = int(merged.holdout.sum())
    draft = DatasetManifest(
        name=name,
        version=0,
        digest=digest,
        created="",
        size=len(blob),
        count=len(merged),
        classes=merged.class_counts(),
        train=len(merged) - holdout,
        holdout=holdout,
        split=labelled.SPLIT_RULE,
        content=content,
        changes=changes.to_dict(),
        previous=numbers[-1] if numbers else None,
        code_version=code_version(),
    )
    manifest = claim_next(
        store,
        what=f"dataset {name!r}",
        numbers=lambda: dataset_numbers(store, name),
        key_of=lambda n: layout.dataset_manifest_key(name, n),
        make=lambda n: dataclasses.replace(draft, version=n, created=now()),
    )
    info = store.head(manifest.blob_key)
    if info is None or info.size != len(blob):
        log.warning("blob %s vanished while adding (concurrent gc?); again", manifest.blob_key)
        store.put(manifest.blob_key, blob)
    expected = (numbers[-1] if numbers else 0) + 1
    if manifest.version != expected and _depth < MAX_CATCH_UP:
        between = range(expected, manifest.version)
        return _catch_up(store, cache_dir, name, between, merged, _depth)
    return AddResult(manifest, created=True, changes=changes, data=merged)


def _catch_up(
    store: Store, cache_dir: Path, name: str, between: range, ours: Labelled, depth: int
) -> AddResult:
    """Other adds claimed versions ``between`` after we read the newest: nothing of
    theirs may be lost, so one more version holds the union (our labels win)."""
    theirs: Labelled | None = None
    for v in between:
        theirs = labelled.merge(theirs, load_dataset(store, cache_dir, f"{name}:{v}")[1])[0]
    union = labelled.merge(theirs, ours)[0]
    return add_dataset(store, cache_dir, name, union, _depth=depth + 1)


def read_source(
    folder: Path | str,
    *,
    progress: labelled.Progress | None = None,
    endpoint_url: str | None = None,
) -> labelled.FolderData:
    """Read a labelled folder (``softmax_core.labelled.read_folder``), or an ``s3://``
    prefix laid out as one (``registry.objects.read_labelled``, at ``endpoint_url``); its
    errors name the source, not the registry.

    Images that cannot be read are left out and listed in the FolderData's ``failures``.
    """
    if is_uri(str(folder)):
        return read_labelled(str(folder), endpoint_url=endpoint_url, progress=progress)
    return labelled.read_folder(Path(folder), progress=progress)


def dataset_digests(store: Store) -> set[str]:
    """Every blob a dataset version refers to (for gc); a damaged manifest raises."""
    digests: set[str] = set()
    for name in dataset_names(store):
        digests.update(m.digest for m in dataset_versions(store, name))
    return digests


def _parse_dataset(store: Store, data: bytes, name: str, version: int, key: str) -> DatasetManifest:
    origin = f"{store.uri}/{key}"
    return parse_versioned(DatasetManifest, data, name=name, version=version, origin=origin)


def _no_dataset(store: Store, name: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"no dataset named {name!r} in {store.uri}; `softmax-pipe dataset list` shows them"
    )
