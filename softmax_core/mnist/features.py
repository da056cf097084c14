"""Cached features: each split's (n, d) float32 features beside its cache entry; and
images derived from the dataset by a deterministic recipe (:func:`cached_uint8`)."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from softmax_core.atomicio import atomic_write
from softmax_core.errors import (
    StorageError,
)
from softmax_core.mnist.arrays import (
    FEATURES_FORMAT,
    Dataset,
    save_npy,
    sha256_matches,
)
from softmax_core.preprocess import Steps

# --- cached features ------------------------------------------------------------------------


def cached_features(
    ds: Dataset, split: Literal["train", "test"], steps: Steps
) -> NDArray[np.float32]:
    """(n, d) float32 features of one split, cached beside the dataset and memory-mapped.

    Computed with :meth:`softmax_core.preprocess.Steps.features` and stored as
    ``ds.path/features/<steps.key>/<split>.npy``, with ``<split>.json`` holding its
    sha256, shape, steps and the dataset digest. A later call verifies the sha256 (see
    :func:`~softmax_core.mnist.arrays.sha256_matches`: hashed until a stamp says the file
    is untouched since) and memory-maps the file; anything that does not verify is
    recomputed, never used. The computation uses a thread per core (up to 4): the same
    bits as one thread.
    """
    images, _ = ds.split(split)
    folder = ds.path / "features" / steps.key  # a file-name-safe key
    npy, meta_path = folder / f"{split}.npy", folder / f"{split}.json"
    shape = [int(images.shape[0]), steps.n_features]
    try:
        meta = json.loads(meta_path.read_text())
        ok = (
            meta.get("format") == FEATURES_FORMAT
            and meta.get("dataset_digest") == ds.digest
            and meta.get("steps") == steps.to_json()
            and meta.get("shape") == shape
            and sha256_matches(npy, str(meta.get("sha256")))
        )
        if ok:
            out = np.load(npy, mmap_mode="r", allow_pickle=False)
            if out.dtype == np.float32 and list(out.shape) == shape:
                result: NDArray[np.float32] = out
                return result
    except (OSError, ValueError, AttributeError):
        pass
    feats = steps.features(images, threads=min(4, os.cpu_count() or 1))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        digest = save_npy(npy, feats)
        meta = {
            "format": FEATURES_FORMAT,
            "dataset_digest": ds.digest,
            "split": split,
            "steps": steps.to_json(),
            "shape": shape,
            "sha256": digest,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write(meta_path, json.dumps(meta, indent=2, sort_keys=True))
    except OSError as e:
        raise StorageError(f"cannot write cached features under {folder}: {e}") from e
    del feats
    result2: NDArray[np.float32] = np.load(npy, mmap_mode="r", allow_pickle=False)
    return result2


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
    blob = json.dumps({"name": name, **key}, sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:16]
    folder = ds.path / "derived"
    npy, meta_path = folder / f"{name}-{digest}.npy", folder / f"{name}-{digest}.json"
    try:
        meta = json.loads(meta_path.read_text())
        if (
            meta.get("format") == DERIVED_FORMAT
            and meta.get("key") == json.loads(blob)
            and sha256_matches(npy, str(meta.get("sha256")))
        ):
            out = np.load(npy, allow_pickle=False)
            if out.dtype == np.uint8 and list(out.shape) == meta.get("shape"):
                result: NDArray[np.uint8] = out
                return result
    except (OSError, ValueError, AttributeError):
        pass
    images = np.ascontiguousarray(make(), dtype=np.uint8)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        sha = save_npy(npy, images)
        meta = {
            "format": DERIVED_FORMAT,
            "key": json.loads(blob),
            "shape": list(images.shape),
            "sha256": sha,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        atomic_write(meta_path, json.dumps(meta, indent=2, sort_keys=True))
    except OSError as e:
        raise StorageError(f"cannot write cached arrays under {folder}: {e}") from e
    return images
