"""Readers of the local MNIST formats: LeCun IDX files (gzipped or not) and npz."""

from __future__ import annotations

import gzip
import hashlib
import io
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import (
    DataFormatError,
    DataNotFoundError,
    StorageError,
)
from softmax_core.mnist.arrays import (
    _CHUNK,
    ARRAY_NAMES,
    IDX_FILES,
    IDX_IMAGES_MAGIC,
    IDX_LABELS_MAGIC,
    MAX_ITEMS,
    SIDE,
    Progress,
    file_sha256,
    say,
    validate_arrays,
)
from softmax_core.words import plural

# --- IDX ------------------------------------------------------------------------------------


def source_files(source: str | None) -> list[Path]:
    """The user's files an MNIST ``source`` is read from: an ``.npz`` file itself, the IDX
    files of a folder (plain and ``.gz``: either may be the one read); none for ``keras``,
    the download or no source (the cache). What an output must not overwrite."""
    if not source or source in ("keras", "download"):
        return []
    path = Path(source).expanduser()
    if not path.is_dir():
        return [path]
    names = [n for stem in IDX_FILES.values() for n in (stem, f"{stem}.gz")]
    return [path / n for n in names if (path / n).is_file()]


def idx_paths(folder: Path) -> dict[str, Path]:
    """The four IDX files in ``folder`` (plain preferred over ``.gz`` when both exist)."""
    found: dict[str, Path] = {}
    missing: list[str] = []
    for name, stem in IDX_FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[name] = candidate
                break
        else:
            missing.append(f"{stem}[.gz]")
    if missing:
        raise DataNotFoundError(f"MNIST IDX folder {folder} is missing {', '.join(missing)}")
    return found


def idx_source_digest(paths: Mapping[str, Path]) -> str:
    h = hashlib.sha256(b"idx\n")
    for name in ARRAY_NAMES:
        p = paths[name]
        h.update(f"{name} {p.name} {file_sha256(p)}\n".encode())
    return h.hexdigest()


def _is_gzip(f: io.BufferedIOBase) -> bool:
    head = f.read(2)
    f.seek(0)
    return head == b"\x1f\x8b"


def _read_exact(f: io.BufferedIOBase, buf: memoryview) -> int:
    """Fill ``buf`` from ``f`` as far as it goes; return the number of bytes read."""
    got = 0
    while got < len(buf):
        n = f.readinto(buf[got:])
        if not n:
            break
        got += n
    return got


def _drain(f: io.BufferedIOBase, limit: int) -> None:
    """Read up to ``limit`` more bytes, so that gzip checks its stream and CRC."""
    while limit > 0:
        chunk = f.read(min(_CHUNK, limit))
        if not chunk:
            return
        limit -= len(chunk)


def _parse_idx(f: io.BufferedIOBase, path: Path, images: bool) -> NDArray[np.uint8]:
    want_magic, ndim = (IDX_IMAGES_MAGIC, 3) if images else (IDX_LABELS_MAGIC, 1)
    what = "images" if images else "labels"
    head = f.read(4)
    if len(head) < 4:
        raise DataFormatError(
            f"{path}: too short for an IDX header ({len(head)} {plural(len(head), 'byte')})"
        )
    magic = int.from_bytes(head, "big")
    if magic != want_magic:
        raise DataFormatError(
            f"{path}: wrong IDX magic 0x{magic:08x}; expected 0x{want_magic:08x} "
            f"(uint8 {what}, {ndim} {plural(ndim, 'dimension')})"
        )
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataFormatError(f"{path}: IDX header cut short in its dimensions")
    dims = tuple(int.from_bytes(raw_dims[i : i + 4], "big") for i in range(0, 4 * ndim, 4))
    if images and dims[1:] != (SIDE, SIDE):
        raise DataFormatError(f"{path}: images are {dims[1]}x{dims[2]}; expected 28x28")
    if dims[0] > MAX_ITEMS:
        raise DataFormatError(
            f"{path}: header claims {dims[0]} {what}, more than the limit {MAX_ITEMS}"
        )
    out = np.empty(dims, dtype=np.uint8)
    got = _read_exact(f, out.data.cast("B")) if out.nbytes else 0  # no view of 0 images
    if got < out.nbytes:
        raise DataFormatError(
            f"{path}: truncated: the header promises {dims[0]} {what} "
            f"({out.nbytes} bytes of data) but the file holds only {got}"
        )
    if f.read(1):
        raise DataFormatError(
            f"{path}: trailing data after the {dims[0]} {what} the header promises"
        )
    return out


def read_idx(path: Path, *, images: bool) -> NDArray[np.uint8]:
    """Parse one IDX file, gzipped or not: (n, 28, 28) uint8 images or (n,) uint8 labels.

    The header is big-endian: magic ``0x00000803`` (images, 3 dims) or ``0x00000801``
    (labels, 1 dim), then one uint32 per dimension, then the data, which must be exactly
    as long as the header says. Reads are bounded by :data:`MAX_ITEMS`, so a lying header
    or a gzip bomb cannot make us read without limit. When a gzipped file's content looks
    wrong, the rest of the stream is checked first, so that a corrupt or truncated gzip is
    reported as such rather than as whatever garbage it decoded to.

    Raises:
        DataFormatError: wrong magic, dims, counts, truncated or trailing data, corrupt or
            truncated gzip; the message names the file.
        StorageError: the file cannot be read.
    """
    try:
        with path.open("rb") as raw:
            if not _is_gzip(raw):
                return _parse_idx(raw, path, images)
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                try:
                    return _parse_idx(f, path, images)
                except DataFormatError:
                    _drain(f, MAX_ITEMS * SIDE * SIDE + 64)  # a gzip error here wins
                    raise
    except EOFError as e:
        raise DataFormatError(f"{path}: truncated gzip stream ({e})") from e
    except (gzip.BadGzipFile, zlib.error) as e:
        raise DataFormatError(f"{path}: corrupt gzip data ({e})") from e
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e}") from e


def load_idx(
    folder: Path, paths: Mapping[str, Path], progress: Progress | None
) -> dict[str, NDArray[np.uint8]]:
    arrays: dict[str, NDArray[np.uint8]] = {}
    for name in ARRAY_NAMES:
        say(progress, f"parsing {paths[name]}")
        arrays[name] = read_idx(paths[name], images=name.startswith("x_"))
    return validate_arrays(arrays, f"MNIST IDX folder {folder}")


# --- npz ------------------------------------------------------------------------------------


def read_npz(path: Path) -> dict[str, NDArray[np.uint8]]:
    """Parse an ``.npz`` with keras's keys, never unpickling; returns validated arrays.

    Raises:
        DataFormatError: not a zip/npz, missing keys, pickled (object) arrays, members
            larger than the limit, wrong shapes/dtypes/counts/labels; names the file.
        StorageError: the file cannot be read.
    """
    try:
        with zipfile.ZipFile(path) as z:
            sizes = {i.filename: i.file_size for i in z.infolist()}
        limit = MAX_ITEMS * SIDE * SIDE + 4096
        for member, size in sizes.items():
            if size > limit:
                raise DataFormatError(
                    f"{path}: member {member} is {size} bytes uncompressed, over the limit {limit}"
                )
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ARRAY_NAMES if k not in z.files]
            if missing:
                raise DataFormatError(
                    f"{path}: missing arrays {missing}; an MNIST .npz holds {list(ARRAY_NAMES)}"
                )
            arrays = {k: z[k] for k in ARRAY_NAMES}
    except DataFormatError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, zlib.error) as e:
        raise DataFormatError(f"{path}: not a readable .npz without pickles ({e})") from e
    except OSError as e:
        raise StorageError(f"cannot read {path}: {e}") from e
    return validate_arrays(arrays, str(path))
