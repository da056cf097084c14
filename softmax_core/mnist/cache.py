"""The verified cache: entries written whole or not at all, checked on every load."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import settings
from softmax_core.atomicio import atomic_write, sweep_temp, temp_dir, temp_path
from softmax_core.errors import (
    StorageError,
)
from softmax_core.mnist.arrays import (
    _STALE_TMP_SECONDS,
    ARRAY_NAMES,
    CACHE_FORMAT,
    SIDE,
    SPLITS,
    Dataset,
    dataset_digest,
    save_npy,
    sha256_matches,
)


def discard(path: Path) -> None:
    """Remove a folder so that it vanishes at once: rename aside (a temporary name), then
    delete; a crash in between leaves a temporary folder that :func:`sweep_stale` removes."""
    trash = temp_path(path)
    try:
        path.rename(trash)
    except FileNotFoundError:
        return  # someone else discarded it first
    except OSError as e:
        raise StorageError(f"cannot remove the bad cache entry {path}: {e}") from e
    shutil.rmtree(trash, ignore_errors=True)


def sweep_stale(root: Path) -> None:
    """Delete temporary leftovers of crashed loaders (older than a day), features included."""
    sweep_temp(root, older_than=_STALE_TMP_SECONDS, recursive=True)


def open_entry(entry: Path) -> tuple[dict[str, Any], dict[str, NDArray[np.uint8]]]:
    """Verify a cache entry and memory-map its arrays; raises ValueError/OSError if unusable."""
    manifest = json.loads((entry / "manifest.json").read_text())
    if manifest.get("format") != CACHE_FORMAT:
        raise ValueError(f"manifest format {manifest.get('format')!r} is not {CACHE_FORMAT}")
    shas: dict[str, str] = manifest["arrays"]
    if sorted(shas) != sorted(ARRAY_NAMES) or not isinstance(manifest.get("digest"), str):
        raise ValueError("manifest does not list the four arrays and a digest")
    arrays: dict[str, NDArray[np.uint8]] = {}
    for name in ARRAY_NAMES:
        path = entry / f"{name}.npy"
        if not sha256_matches(path, shas[name]):
            raise ValueError(f"{path.name}: sha256 does not match the manifest")
        arrays[name] = np.load(path, mmap_mode="r", allow_pickle=False)
    for split in SPLITS:
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if (
            x.dtype != np.uint8
            or y.dtype != np.uint8
            or x.ndim != 3
            or x.shape[1:] != (SIDE, SIDE)
            or y.shape != (x.shape[0],)
        ):
            raise ValueError(f"{split} arrays have unexpected shapes {x.shape}, {y.shape}")
    return manifest, arrays


def make_root(root: Path) -> None:
    """Make the cache folder ``root`` (and its parents) if it is missing.

    Raises:
        StorageError: it cannot be made (a file in its place, a folder not writable).
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _cannot_create(root, e) from e


def _cannot_create(root: Path, e: OSError) -> StorageError:
    return StorageError(
        f"cannot create the MNIST cache under {root} ({e.strerror or e}); "
        f"give a writable --cache-dir (or {settings.ENV_CACHE})"
    )


def write_entry(
    root: Path,
    key: str,
    arrays: Mapping[str, NDArray[np.uint8]],
    *,
    source: str,
    source_digest: str,
) -> Path:
    """Write an entry into a temporary folder and rename it into place; return its path.

    If another loader put a valid entry in place first, theirs is kept and ours dropped.
    """
    entry = root / key
    make_root(root)
    try:
        tmp = temp_dir(entry)
    except OSError as e:
        raise _cannot_create(root, e) from e
    try:
        shas: dict[str, str] = {}
        for name in ARRAY_NAMES:
            shas[name] = save_npy(tmp / f"{name}.npy", arrays[name])
        manifest = {
            "format": CACHE_FORMAT,
            "source": source,
            "source_key": key,
            "source_digest": source_digest,
            "digest": dataset_digest(arrays),
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "arrays": shas,
            "shapes": {n: list(arrays[n].shape) for n in ARRAY_NAMES},
        }
        atomic_write(tmp / "manifest.json", json.dumps(manifest, indent=2, sort_keys=True))
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.exists():
                raise
            # Lost the race to a concurrent loader: keep theirs, drop ours.
    except (OSError, StorageError) as e:
        raise StorageError(f"cannot write the MNIST cache entry {entry}: {e}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


def dataset_from_entry(
    arrays: Mapping[str, NDArray[np.uint8]],
    manifest: Mapping[str, Any],
    label: str,
    entry: Path,
    *,
    cached: bool,
) -> Dataset:
    return Dataset(
        x_train=arrays["x_train"],
        y_train=arrays["y_train"],
        x_test=arrays["x_test"],
        y_test=arrays["y_test"],
        digest=str(manifest["digest"]),
        source=label,
        path=entry,
        cached=cached,
        arrays=dict(manifest["arrays"]),
    )


def entries_by_use(root: Path) -> list[Path]:
    """The cache entries under ``root`` (complete ones: a manifest in place), the most
    recently used first (:func:`mark_used` moves an entry's mtime)."""
    if not root.is_dir():
        return []
    found = [
        d
        for d in root.iterdir()
        if d.is_dir() and not d.name.startswith(".") and (d / "manifest.json").is_file()
    ]
    return sorted(found, key=lambda d: d.stat().st_mtime, reverse=True)


def mark_used(entry: Path) -> None:
    """Record that ``entry`` was just loaded (its folder's mtime), so a later load with no
    source takes the MNIST last used; a read-only cache is left as it is."""
    with contextlib.suppress(OSError):
        os.utime(entry)
