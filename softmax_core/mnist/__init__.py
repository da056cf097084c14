"""MNIST ingest: a source → validated uint8 arrays → a verified, memory-mapped cache entry.

Sources (see :func:`resolve_source`):

- ``keras``: ``keras.datasets.mnist.load_data()`` (optional extra, imported lazily).
- ``download``: keras's ``mnist.npz``, its sha256 checked: keras's cached copy when it has
  one (``~/.keras/datasets/``), else fetched over HTTP(S) by ``pooch.retrieve``.
- a folder of LeCun IDX files, gzipped or not (``train-images-idx3-ubyte[.gz]``, ...).
- a local ``.npz`` with keras's keys (``x_train``, ``y_train``, ``x_test``, ``y_test``).

Arrays (every source, after validation)::

    x_train  (n_train, 28, 28) uint8   pixels 0..255, ink bright on dark
    y_train  (n_train,)        uint8   labels 0..9
    x_test   (n_test, 28, 28)  uint8
    y_test   (n_test,)         uint8

Cache layout, under ``cache_dir``::

    mnist/<kind>-<source digest>/          one entry per source, written whole or not at all
        x_train.npy y_train.npy x_test.npy y_test.npy
        manifest.json                      per-array sha256 of the .npy files, dataset digest,
                                           source, created time
        features/<steps>/<split>.npy       cached_features(): (n, 784) float32
        features/<steps>/<split>.json      its sha256, shape, steps, dataset digest
        derived/<name>-<key>.npy           cached_uint8(): generated negatives, cluttered
        derived/<name>-<key>.json          digits (train's reject column); key, sha256
        derived/features/<steps>/<name>-<key>.npy   cached_uint8_features(): their features

The source digest is the sha256 of the source's own bytes (the IDX files, the npz file;
for ``download`` the published sha256, so a warm load needs no network; for ``keras``
the dataset digest of the arrays it returned), so a re-run with the same source reuses
the entry. An entry is built in a hidden temporary folder beside it and renamed into
place: a reader never sees a half-written entry, and concurrent loaders cannot corrupt
each other (the loser of the rename race uses the winner's entry). On a warm load every
``.npy`` is checked against its sha256 in the manifest and memory-mapped; an entry that
fails any check is moved aside, deleted and rebuilt, never used.

The dataset digest (lineage) depends only on the array contents, not on the source
format or on numpy's ``.npy`` header layout: see :func:`dataset_digest`.

Pure numpy + stdlib; no Prefect, no S3.
"""

from __future__ import annotations

from pathlib import Path

from softmax_core.errors import StorageError
from softmax_core.mnist.arrays import (
    ARRAY_NAMES,
    MNIST_SHA256,
    MNIST_URL,
    SIDE,
    SPLITS,
    Dataset,
    Progress,
    dataset_digest,
    file_sha256,
    save_npy,
    say,
)
from softmax_core.mnist.cache import (
    dataset_from_entry,
    discard,
    entries_by_use,
    make_root,
    mark_used,
    open_entry,
    sweep_stale,
    write_entry,
)
from softmax_core.mnist.features import cached_features, cached_uint8, cached_uint8_features
from softmax_core.mnist.formats import read_idx, read_npz
from softmax_core.mnist.sources import keras_available, open_source, resolve_source

__all__ = [
    "ARRAY_NAMES",
    "MNIST_SHA256",
    "MNIST_URL",
    "SIDE",
    "SPLITS",
    "Dataset",
    "cached_features",
    "cached_uint8",
    "cached_uint8_features",
    "dataset_digest",
    "file_sha256",
    "keras_available",
    "load_mnist",
    "read_idx",
    "read_npz",
    "resolve_source",
    "save_npy",
]


def load_mnist(
    source: str | None,
    *,
    cache_dir: Path,
    url: str = MNIST_URL,
    sha256: str = MNIST_SHA256,
    progress: Progress | None = None,
) -> Dataset:
    """Load MNIST from a source through the cache: a verified, memory-mapped :class:`Dataset`.

    Args:
        source: ``keras``, ``download``, a folder of IDX files, an ``.npz``, or ``None``:
            the MNIST already in the cache (the entry last used, whatever source made it:
            ``ingest`` or ``run`` once with ``--source``, then every command without it),
            else the local source of a damaged entry (parsed again), else the default of
            :func:`resolve_source`.
        cache_dir: the cache folder; entries go under ``cache_dir/mnist/``.
        url: where ``download`` fetches ``mnist.npz`` (http or https).
        sha256: the sha256 the downloaded file must have.
        progress: called with one-line human messages (parsing, bytes downloaded, cache hit).

    Returns:
        x_train (n, 28, 28) uint8, y_train (n,) uint8, x_test, y_test memory-mapped from the
        cache entry, with the dataset digest for lineage.

    Raises:
        DataNotFoundError: a missing path or IDX file. DataFormatError: a corrupt or
        malformed source (names the file). DownloadError: a network failure (retryable).
        IntegrityError: the download's sha256 is not ``sha256``. StorageError: the cache
        cannot be written. In every failure the cache keeps no partial state.
    """
    root = Path(cache_dir).expanduser() / "mnist"
    make_root(root)  # a cache that cannot be made says so, not the network after a load
    sweep_stale(root)
    if source is None:
        cached, source = _last_used(root, progress)
        if cached is not None:
            return cached
    resolved = resolve_source(source)
    src = open_source(resolved, url=url, sha256=sha256, tmp_root=root)
    source_digest = src.digest(progress)
    entry = root / f"{src.kind}-{source_digest}"
    if entry.exists():
        try:
            manifest, arrays = open_entry(entry)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            say(progress, f"cache entry {entry} failed verification ({e}); rebuilding")
            discard(entry)
        else:
            say(progress, f"cache hit: {entry}")
            mark_used(entry)
            return dataset_from_entry(arrays, manifest, src.label, entry, cached=True)
    parsed = src.load(progress)
    say(progress, f"writing cache entry {entry}")
    write_entry(root, entry.name, parsed, source=src.label, source_digest=source_digest)
    del parsed
    try:
        manifest, arrays = open_entry(entry)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise StorageError(f"the MNIST cache entry {entry} just written is unreadable: {e}") from e
    mark_used(entry)
    return dataset_from_entry(arrays, manifest, src.label, entry, cached=False)


def _last_used(root: Path, progress: Progress | None) -> tuple[Dataset | None, str | None]:
    """The verified cache entry used last, as its source made it; when there is none, None
    and the local source (a folder of IDX files, an .npz) that made the first entry that
    failed verification, to parse again rather than fetch another MNIST (an entry that
    fails verification is discarded and the next one tried)."""
    recorded = None
    for entry in entries_by_use(root):
        try:
            manifest, arrays = open_entry(entry)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            say(progress, f"cache entry {entry} failed verification ({e}); discarded")
            recorded = recorded or _local_source(entry)
            discard(entry)
            continue
        label = str(manifest.get("source") or entry.name)
        say(progress, f"no source given: the MNIST cached from {label} ({entry})")
        mark_used(entry)
        return dataset_from_entry(arrays, manifest, label, entry, cached=True), None
    if recorded is not None:
        say(progress, f"no source given: parsing {recorded} again, which made the entry")
    return None, recorded


def _local_source(entry: Path) -> str | None:
    """The local source (``idx:FOLDER``, ``npz:FILE``) an entry's manifest records, while
    it is still there; None for another source or a manifest that cannot be read."""
    import json

    try:
        label = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(label, str) or not label.startswith(("idx:", "npz:")):
        return None
    return label if Path(label[4:]).exists() else None
