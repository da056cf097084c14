"""Reading what a registry holds of its models: names, versions, manifests, aliases, history.

Functions over a :class:`~registry.store.Store`, passed in; they write nothing but the
index pages (a cache, best effort). Errors name the registry (``store.uri``) and what
it does have.

versions (listing)
    one listing of ``versions/`` (with ETags), then the write-once index pages
    ``index/<page>.json`` (copies of 100 manifests each, with the ETag each manifest had);
    an entry is used only if its ETag still matches the listing, anything else is read
    from the manifest itself. The pages are a cache: damaged or missing ones only cost
    time.
resolve
    ``name@alias``: 2 requests (the alias record, the manifest); ``name:n``: 1; a bare
    name (its newest version): 2. An alias resolves only to the manifest it was moved
    to: one whose blob digest differs from the one the move recorded is refused
    (IntegrityError).
"""

from __future__ import annotations

import logging

from registry import layout
from registry.index import copies_manifest, read_index, write_index
from registry.manifest import AliasRecord, Manifest, parse_versioned
from registry.names import is_name, parse_ref, span_of, validate_name
from registry.store import Store
from softmax_core.errors import (
    CorruptObjectError,
    DataNotFoundError,
    IntegrityError,
    ModelNotFoundError,
    ObjectNotFoundError,
    PermissionDeniedError,
    StorageError,
)

log = logging.getLogger(__name__)


def model_names(store: Store) -> list[str]:
    """Names of the models with at least one version, sorted."""
    store.check_exists()
    return sorted(n for n in store.children(layout.MODELS) if is_name(n))


def version_numbers(store: Store, name: str) -> list[int]:
    prefix = layout.versions_prefix(name)
    nums = (layout.number_of(k, prefix) for k in store.list_keys(prefix))
    return sorted(n for n in nums if n is not None and n >= 1)


def versions(store: Store, name: str) -> list[Manifest]:
    """Every version of ``name``, oldest first. ModelNotFoundError if it has none.

    Cost: one listing of the version keys, then the index pages (one GET per 100
    versions) for every version whose manifest ETag matches its index entry, and one
    GET per version that no page covers yet. Pages for full ranges of 100 are written
    (only-if-absent) as a side effect, so the next listing is cheap for everyone.
    """
    prefix = layout.versions_prefix(name)
    listed: dict[int, str | None] = {}
    for info in store.list_info(prefix):
        n = layout.number_of(info.key, prefix)
        if n is not None and n >= 1:
            listed[n] = info.etag
    if not listed:
        raise no_model(store, name)
    known, damaged = read_index(store, name, {layout.page_of(n) for n in listed})
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
    for n, key, got in zip(missing, keys, store.get_many(keys), strict=True):
        if got is not None:  # None: deleted by hand since the listing
            found[n] = (listed[n] or got[1], parse_manifest(store, got[0], name, n, key))
    write_index(store, name, found, {layout.page_of(n) for n in missing}, max(listed), damaged)
    return [found[n][1] for n in sorted(found)]


def close_index_page(store: Store, name: str) -> None:
    """A version just completed a range of 100: write that range's index page (best effort)."""
    try:
        versions(store, name)  # writes the pages of every completed range it had to read
    except (StorageError, PermissionDeniedError, ModelNotFoundError) as e:
        log.debug("could not write the index of %s: %s", name, e)


def manifest(store: Store, name: str, version: int) -> Manifest:
    key = layout.manifest_key(name, version)
    try:
        data, _ = store.get(key)
    except ObjectNotFoundError:
        raise no_version(store, name, version) from None
    return parse_manifest(store, data, name, version, key)


def resolve(store: Store, ref: str) -> Manifest:
    """``name@alias`` | ``name:version`` | ``name`` (its newest version) -> its manifest."""
    name, alias, version = parse_ref(ref)
    if alias is not None:
        record = alias_record(store, name, alias)
        found = manifest(store, name, record.version)
        if record.digest is not None and found.digest != record.digest:
            raise IntegrityError(
                f"{name}@{alias} was moved to {found.ref} when its manifest named blob "
                f"sha256:{record.digest}, but {store.uri}/{layout.manifest_key(name, record.version)} "
                f"now names sha256:{found.digest}: the manifest was rewritten after the move; "
                f"not loaded. Check it, then pin what it names now with `softmax-pipe registry "
                f"promote {name}:{record.version} {alias}`, or move the alias elsewhere"
            )
        return found
    if version is not None:
        return manifest(store, name, version)
    numbers = version_numbers(store, name)
    if not numbers:
        raise no_model(store, name)
    return manifest(store, name, numbers[-1])


def alias_record(store: Store, name: str, alias: str) -> AliasRecord:
    key = layout.alias_key(name, alias)
    try:
        data, _ = store.get(key)
    except ObjectNotFoundError:
        raise no_alias(store, name, alias) from None
    return parse_alias(store, data, name, alias, key)


def alias_versions(store: Store, name: str) -> dict[str, int]:
    """``{alias: version}`` for one model, sorted by alias."""
    validate_name("model name", name)
    prefix = layout.aliases_prefix(name)
    keys = [
        k for k in store.list_keys(prefix) if "/" not in k[len(prefix) :] and k.endswith(".json")
    ]
    out: dict[str, int] = {}
    for key, got in zip(keys, store.get_many(keys), strict=True):
        if got is None:
            continue
        alias = key[len(prefix) : -len(".json")]
        if is_name(alias):
            out[alias] = parse_alias(store, got[0], name, alias, key).version
    return dict(sorted(out.items()))


def history(store: Store, name: str, alias: str) -> list[AliasRecord]:
    """Every recorded move of ``name@alias``, oldest first."""
    prefix = layout.alias_log_prefix(name, alias)
    keys = [k for k in store.list_keys(prefix) if layout.number_of(k, prefix) is not None]
    records = {
        r.seq: r
        for r in (
            parse_alias(store, got[0], name, alias, key)
            for key, got in zip(keys, store.get_many(keys), strict=True)
            if got is not None
        )
    }
    current = alias_record(store, name, alias)  # ModelNotFoundError when there is no alias
    records.setdefault(current.seq, current)  # its log write may have been cut short
    return [records[s] for s in sorted(records)]


def model_digests(store: Store) -> set[str]:
    """Every blob a model version refers to (for gc), read from the manifests themselves,
    never from the index pages (a cache that a tampered or stale page could make lie).
    A damaged manifest might refer to any blob: it raises CorruptObjectError."""
    digests: set[str] = set()
    for name in model_names(store):
        numbers = version_numbers(store, name)
        keys = [layout.manifest_key(name, n) for n in numbers]
        for n, key, got in zip(numbers, keys, store.get_many(keys), strict=True):
            if got is not None:  # None: deleted since the listing
                digests.add(parse_manifest(store, got[0], name, n, key).digest)
    return digests


# --- parsing and errors -------------------------------------------------------------------
def parse_manifest(store: Store, data: bytes, name: str, version: int, key: str) -> Manifest:
    return parse_versioned(Manifest, data, name=name, version=version, origin=f"{store.uri}/{key}")


def parse_alias(store: Store, data: bytes, name: str, alias: str, key: str) -> AliasRecord:
    origin = f"{store.uri}/{key}"
    rec = AliasRecord.from_bytes(data, origin=origin)
    if rec.name != name or rec.alias != alias:
        raise CorruptObjectError(f"{origin} claims to be {rec.ref}, expected {name}@{alias}")
    return rec


def no_model(store: Store, name: str) -> ModelNotFoundError:
    try:
        store.check_exists()
    except DataNotFoundError:  # a first `score` on a fresh home, or a mistyped --registry
        return ModelNotFoundError(
            f"no model named {name!r}: no registry at {store.uri} (the folder does not "
            "exist); `softmax-pipe run` trains a model and publishes it there, or check "
            "--registry / SOFTMAX_PIPE_REGISTRY if you meant another"
        )
    if not any(is_name(n) for n in store.children(layout.MODELS)):
        return ModelNotFoundError(
            f"no model named {name!r}: {store.uri} holds no models yet; `softmax-pipe run` "
            "trains one and publishes it there"
        )
    return ModelNotFoundError(
        f"no model named {name!r} in {store.uri}; `softmax-pipe registry list` shows the models"
    )


def no_version(store: Store, name: str, version: int) -> ModelNotFoundError:
    numbers = version_numbers(store, name)
    if not numbers:
        return no_model(store, name)
    return ModelNotFoundError(
        f"model {name!r} has no version {version} in {store.uri}; it has {span_of(numbers)}"
    )


def no_alias(store: Store, name: str, alias: str) -> ModelNotFoundError:
    if not version_numbers(store, name):
        return no_model(store, name)
    known = sorted(alias_versions(store, name))
    hint = f"its aliases: {', '.join(known)}" if known else "it has no aliases yet"
    return ModelNotFoundError(f"model {name!r} has no alias {alias!r} in {store.uri}; {hint}")
