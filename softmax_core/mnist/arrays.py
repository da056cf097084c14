"""MNIST as validated uint8 arrays: the Dataset, its limits, digests and validation."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from numpy.typing import NDArray

from softmax_core.atomicio import atomic_save, atomic_write
from softmax_core.errors import (
    DataFormatError,
    InvalidInputError,
)

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# keras.datasets.mnist.load_data's published file_hash for the file above.
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"

SIDE = 28
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")
SPLITS = ("train", "test")
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension

CACHE_FORMAT = "softmax-pipe/mnist-cache@1"
# @2: deskew centres of mass reduced without BLAS (the same bits in any batch size)
FEATURES_FORMAT = "softmax-pipe/mnist-features@2"
DIGEST_FORMAT = b"softmax-pipe/mnist@1\n"

MAX_ITEMS = 1_000_000  # images per split: caps what a header or a zip member can make us read
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024
DOWNLOAD_TIMEOUT = 60.0  # seconds per socket operation
_CHUNK = 1 << 20
_STALE_TMP_SECONDS = 24 * 3600

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class Dataset:
    """MNIST as validated uint8 arrays, memory-mapped from a verified cache entry.

    Attributes:
        x_train: (n_train, 28, 28) uint8, pixels 0..255.
        y_train: (n_train,) uint8, labels 0..9.
        x_test: (n_test, 28, 28) uint8.
        y_test: (n_test,) uint8.
        digest: sha256 hex of the array contents (lineage): the same arrays give the same
            digest whatever the source format.
        source: origin the data came from: ``idx:/abs/dir``, ``npz:/abs/file.npz``,
            ``download:<url>`` or ``keras``.
        path: the cache entry folder.
        cached: True when this load was a cache hit: nothing parsed or written (for
            ``keras``, keras itself is still called, to learn the digest of its arrays).
        arrays: array name -> sha256 of its ``.npy`` file (the manifest).
    """

    x_train: NDArray[np.uint8]
    y_train: NDArray[np.uint8]
    x_test: NDArray[np.uint8]
    y_test: NDArray[np.uint8]
    digest: str
    source: str
    path: Path
    cached: bool
    arrays: dict[str, str]

    def split(self, split: Literal["train", "test"]) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
        """The (images (n, 28, 28), labels (n,)) of one split."""
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise InvalidInputError(f"split must be 'train' or 'test', got {split!r}")


# --- digests --------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes, streamed."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# A file's stat must be this much older than now before a verified stamp is written: a
# write within the file system's timestamp granularity could otherwise leave size, mtime
# and ctime as they were ("racy git").
STAMP_MIN_AGE_NS = 2_000_000_000


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev]


def sha256_matches(path: Path, expected: str) -> bool:
    """Whether ``path`` holds bytes whose sha256 is ``expected``, hashing only when needed.

    A full hash proves it the first time; then a stamp beside the file
    (``<name>.verified``: the digest and the file's size, mtime, ctime, inode) lets later
    calls skip the hash while the file is untouched. Any write, truncation, ``touch`` or
    replacement changes ctime (which no call can set back), so a changed file is hashed
    again and, damaged, rejected. The stamp is only written once the file is
    ``STAMP_MIN_AGE_NS`` old, so a change in the same timestamp tick cannot pass for none.
    """
    stamp = path.with_name(path.name + ".verified")
    try:
        st = path.stat()
        try:
            seen = json.loads(stamp.read_text())
            if seen == {"sha256": expected, "stat": _stat_key(st)}:
                return True
        except (OSError, ValueError):
            pass
        if file_sha256(path) != expected:
            return False
        if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) >= STAMP_MIN_AGE_NS:
            # A read-only cache still verifies, by hashing every time.
            with contextlib.suppress(OSError):
                atomic_write(stamp, json.dumps({"sha256": expected, "stat": _stat_key(st)}))
        return True
    except OSError:
        return False


class _HashingWriter:
    """A write-only file wrapper that hashes what goes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.sha256.update(b)
        return self._f.write(b)


def save_npy(path: Path, array: NDArray[Any]) -> str:
    """``np.save`` without pickles, atomically, hashing in the same pass; returns the sha256."""

    def save(f: IO[bytes]) -> str:
        w = _HashingWriter(f)
        np.save(w, np.ascontiguousarray(array), allow_pickle=False)
        return w.sha256.hexdigest()

    digest: str = atomic_save(path, save)
    return digest


def dataset_digest(arrays: Mapping[str, NDArray[Any]]) -> str:
    """sha256 hex of the four arrays' contents, independent of any file format.

    Hashed: ``b"softmax-pipe/mnist@1\\n"``, then for each of x_train, y_train, x_test,
    y_test in that order a line ``"<name> <dtype> <shape>\\n"`` followed by its raw
    C-order bytes.
    """
    h = hashlib.sha256(DIGEST_FORMAT)
    for name in ARRAY_NAMES:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name} {a.dtype.str} {list(a.shape)}\n".encode())
        h.update(a.data.cast("B"))
    return h.hexdigest()


# --- validation -----------------------------------------------------------------------------


def validate_arrays(arrays: Mapping[str, Any], origin: str) -> dict[str, NDArray[np.uint8]]:
    """Check shapes, dtypes, counts and label range; labels of any integer dtype become uint8.

    Returns C-contiguous arrays: x (n, 28, 28) uint8, y (n,) uint8.
    """
    out: dict[str, NDArray[np.uint8]] = {}
    for split in SPLITS:
        xn, yn = f"x_{split}", f"y_{split}"
        x = np.asarray(arrays[xn])
        y = np.asarray(arrays[yn])
        if x.dtype != np.uint8:
            raise DataFormatError(f"{origin}: {xn} must be uint8 pixels, got dtype {x.dtype}")
        if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
            raise DataFormatError(f"{origin}: {xn} must have shape (n, 28, 28), got {x.shape}")
        if y.ndim != 1:
            raise DataFormatError(f"{origin}: {yn} must have shape (n,), got {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise DataFormatError(
                f"{origin}: {x.shape[0]} {split} images but {y.shape[0]} {split} labels"
            )
        if x.shape[0] == 0:
            raise DataFormatError(f"{origin}: the {split} split holds no images")
        if x.shape[0] > MAX_ITEMS:
            raise DataFormatError(
                f"{origin}: {x.shape[0]} {split} images, more than the limit of {MAX_ITEMS}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataFormatError(f"{origin}: {yn} must hold integer labels, got dtype {y.dtype}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > 9:
            raise DataFormatError(f"{origin}: {yn} holds labels in {lo}..{hi}; expected 0..9")
        out[xn] = np.ascontiguousarray(x)
        out[yn] = np.ascontiguousarray(y, dtype=np.uint8)
    return out


def say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
