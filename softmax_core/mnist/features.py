"""Cached features: each split's (n, d) float32 features beside its cache entry."""

from __future__ import annotations

import json
import os
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
