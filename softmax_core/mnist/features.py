"""Cached features: each split's (n, d) float32 features beside its cache entry; and
images derived from the dataset by a deterministic recipe (:func:`cached_uint8`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from softmax_core.atomicio import atomic_write
from softmax_core.errors import (
    StorageError,
)
from softmax_core.mnist.arrays import (
    FEATURES_FORMAT,
    Dataset,
    Progress,
    save_npy,
    say,
    sha256_matches,
)
from softmax_core.preprocess import Steps

# --- cached features ------------------------------------------------------------------------


def cached_features(
    ds: Dataset,
    split: Literal["train", "test"],
    steps: Steps,
    *,
    progress: Progress | None = None,
) -> NDArray[np.float32]:
    """(n, d) float32 features of one split, cached beside the dataset and memory-mapped.

    Computed with :meth:`softmax_core.preprocess.Steps.features` and stored as
    ``ds.path/features/<steps.key>/<split>.npy``, with ``<split>.json`` holding its
    sha256, shape, steps and the dataset digest. A later call verifies the sha256 (see
    :func:`~softmax_core.mnist.arrays.sha256_matches`: hashed until a stamp says the file
    is untouched since) and memory-maps the file; anything that does not verify is
    recomputed, never used. The computation uses a thread per core (up to 4): the same
    bits as one thread; ``progress`` is told before it starts (one line).
    """
    images, _ = ds.split(split)
    folder = ds.path / "features" / steps.key  # a file-name-safe key
    npy, meta_path = folder / f"{split}.npy", folder / f"{split}.json"
    shape = [int(images.shape[0]), steps.n_features]
    fields = {
        "format": FEATURES_FORMAT,
        "dataset_digest": ds.digest,
        "split": split,
        "steps": steps.to_json(),
        "shape": shape,
    }
    found: NDArray[np.float32] | None = _verified(
        npy, meta_path, fields, np.dtype(np.float32), mmap=True
    )
    if found is not None:
        return found
    say(progress, f"computing {_named(steps)} features of {len(images):,} MNIST {split} images")
    feats = steps.features(images, threads=min(4, os.cpu_count() or 1))
    _store(npy, meta_path, feats, fields, "cached features")
    del feats
    result: NDArray[np.float32] = np.load(npy, mmap_mode="r", allow_pickle=False)
    return result


# --- cached derived images ------------------------------------------------------------------

DERIVED_FORMAT = "softmax-pipe/derived-images@1"


def cached_uint8(
    ds: Dataset, name: str, key: dict[str, object], make: Callable[[], NDArray[np.uint8]]
) -> NDArray[np.uint8]:
    """A uint8 array made by a deterministic recipe beside the dataset (the generated
    negatives, the cluttered digits and their labels), cached as
    ``ds.path/derived/<name>-<sha of key>.npy`` with a ``.json`` holding the key, shape
    and sha256, verified as :func:`cached_features` verifies its files. ``key`` must name
    everything the images depend on (counts, seeds, the code's digest); ``make`` is called
    when nothing verified is there. The cached array is loaded whole (a few MB)."""
    npy, meta_path, keyed = _derived(ds.path / "derived", name, key)
    fields = {"format": DERIVED_FORMAT, "key": keyed}
    found: NDArray[np.uint8] | None = _verified(
        npy, meta_path, fields, np.dtype(np.uint8), mmap=False
    )
    if found is not None:
        return found
    images = np.ascontiguousarray(make(), dtype=np.uint8)
    _store(npy, meta_path, images, fields, "cached arrays")
    return images


def cached_uint8_features(
    ds: Dataset,
    name: str,
    key: dict[str, object],
    steps: Steps,
    images: NDArray[np.uint8],
    *,
    progress: Progress | None = None,
    what: str = "",
) -> NDArray[np.float32]:
    """``steps.features(images)`` (n, d) float32, where ``images`` is :func:`cached_uint8`'s
    array of that ``name`` and ``key``: cached beside it as
    ``ds.path/derived/features/<steps.key>/<name>-<sha of key>.npy``, verified and
    memory-mapped as :func:`cached_features`' files (the cluttered digits and generated
    negatives are featurised once, not at every training); ``progress`` is told before
    they are computed, ``what`` naming the images (default: ``name``)."""
    npy, meta_path, keyed = _derived(ds.path / "derived" / "features" / steps.key, name, key)
    fields = {
        "format": DERIVED_FORMAT,
        "key": keyed,
        "steps": steps.to_json(),
        "shape": [int(images.shape[0]), steps.n_features],
    }
    found: NDArray[np.float32] | None = _verified(
        npy, meta_path, fields, np.dtype(np.float32), mmap=True
    )
    if found is not None:
        return found
    say(progress, f"computing {_named(steps)} features of {len(images):,} {what or name}")
    feats = steps.features(images)
    _store(npy, meta_path, feats, fields, "cached features")
    return feats


def _named(steps: Steps) -> str:
    """The steps' ``--features`` name, else their description."""
    return steps.feature_set or steps.describe()


# --- one cached array and its meta ----------------------------------------------------------


def _derived(folder: Path, name: str, key: dict[str, object]) -> tuple[Path, Path, object]:
    """A derived array's ``.npy`` and ``.json`` paths in ``folder`` (``<name>-<sha of the
    key>``) and the key as its meta JSON holds it (with the name)."""
    blob = json.dumps({"name": name, **key}, sort_keys=True)
    stem = f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"
    return folder / f"{stem}.npy", folder / f"{stem}.json", json.loads(blob)


def _verified(
    npy: Path, meta_path: Path, fields: Mapping[str, object], dtype: np.dtype[Any], *, mmap: bool
) -> Any:
    """The array at ``npy`` when its meta JSON holds ``fields`` and a sha256 the file still
    matches, and the array has ``dtype`` and the meta's shape; else None (missing, stale,
    changed or unreadable: the caller makes it again)."""
    try:
        meta = json.loads(meta_path.read_text())
        if all(meta.get(k) == v for k, v in fields.items()) and sha256_matches(
            npy, str(meta.get("sha256"))
        ):
            out = np.load(npy, mmap_mode="r" if mmap else None, allow_pickle=False)
            if out.dtype == dtype and list(out.shape) == meta.get("shape"):
                return out
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _store(
    npy: Path, meta_path: Path, array: NDArray[Any], fields: Mapping[str, object], what: str
) -> None:
    """Write ``array`` to ``npy``, then its meta JSON: ``fields``, its shape, its sha256
    and when it was made (the meta last: a crash between leaves a file that never
    verifies)."""
    try:
        npy.parent.mkdir(parents=True, exist_ok=True)
        sha = save_npy(npy, array)
        meta = {
            **fields,
            "shape": list(array.shape),
            "sha256": sha,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write(meta_path, json.dumps(meta, indent=2, sort_keys=True))
    except OSError as e:
        raise StorageError(f"cannot write {what} under {npy.parent}: {e}") from e
