"""MNIST ingest: a source → validated uint8 arrays → a verified, memory-mapped cache entry.

Sources (see :func:`resolve_source`):

- ``keras``: ``keras.datasets.mnist.load_data()`` (optional extra, imported lazily).
- ``download``: keras's ``mnist.npz`` fetched over HTTP(S) with urllib, its sha256 checked.
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

import contextlib
import gzip
import hashlib
import http.client
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from numpy.typing import NDArray

from softmax_core import preprocess
from softmax_core.errors import (
    DataFormatError,
    DataNotFoundError,
    DownloadError,
    IntegrityError,
    InvalidInputError,
    StorageError,
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
FEATURES_FORMAT = "softmax-pipe/mnist-features@1"
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
        source: where the data came from: ``idx:/abs/dir``, ``npz:/abs/file.npz``,
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


# --- sources --------------------------------------------------------------------------------


def keras_available() -> bool:
    """True when ``import keras`` can be attempted (installed, or already imported)."""
    if "keras" in sys.modules:
        return sys.modules["keras"] is not None
    try:
        return importlib.util.find_spec("keras") is not None
    except (ImportError, ValueError):
        return False


def resolve_source(source: str | None) -> str:
    """Validate a source and return its canonical form.

    ``None`` (no ``--source`` and no ``SOFTMAX_PIPE_MNIST``; the environment variable is
    read by :class:`softmax_core.settings.Settings`, not here) becomes ``keras`` when keras
    is installed, else ``download``. ``keras`` and ``download`` are kept as they are. Anything
    else is a path (``~`` expanded; an ``idx:`` or ``npz:`` prefix, as in
    :attr:`Dataset.source`, is accepted) to a folder of IDX files or to an ``.npz`` file,
    returned absolute.

    Raises:
        DataNotFoundError: the path does not exist.
        InvalidInputError: ``keras`` without keras installed; a path that is neither a
            folder nor an ``.npz`` file.
    """
    if source is None:
        return "keras" if keras_available() else "download"
    text = source.strip()
    if text == "keras":
        if not keras_available():
            raise InvalidInputError(
                "source 'keras' needs keras and a backend: pip install 'softmax-pipe[keras]', "
                "or use --source download"
            )
        return "keras"
    if text == "download":
        return "download"
    if not text:
        raise InvalidInputError(
            "empty MNIST source; expected 'keras', 'download', a folder of IDX files or an .npz"
        )
    prefix = ""
    if text.startswith(("idx:", "npz:")):
        prefix, text = text[:3], text[4:]
    path = Path(text).expanduser().absolute()
    if not path.exists():
        raise DataNotFoundError(
            f"MNIST source {source!r} not found: expected 'keras', 'download', "
            f"a folder of IDX files or an .npz file, and {path} does not exist"
        )
    if path.is_dir() and prefix in ("", "idx"):
        return str(path)
    if path.is_file() and path.suffix.lower() == ".npz" and prefix in ("", "npz"):
        return str(path)
    if prefix:
        raise InvalidInputError(
            f"MNIST source {source!r}: {path} is not "
            + ("a folder of IDX files" if prefix == "idx" else "an .npz file")
        )
    raise InvalidInputError(
        f"MNIST source {path} is neither a folder of IDX files nor an .npz file"
    )


def _kind(resolved: str) -> str:
    if resolved in ("keras", "download"):
        return resolved
    return "idx" if Path(resolved).is_dir() else "npz"


# --- digests --------------------------------------------------------------------------------


def file_sha256(path: Path) -> str:
    """sha256 hex of a file's bytes, streamed."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class _HashingWriter:
    """A write-only file wrapper that hashes what goes through it."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha256 = hashlib.sha256()

    def write(self, b: bytes) -> int:
        self.sha256.update(b)
        return self._f.write(b)


def save_npy(path: Path, array: NDArray[Any]) -> str:
    """``np.save`` without pickles, hashing in the same pass; returns the file's sha256."""
    with path.open("wb") as f:
        w = _HashingWriter(f)
        np.save(w, np.ascontiguousarray(array), allow_pickle=False)
    return w.sha256.hexdigest()


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


def _validate(arrays: Mapping[str, Any], where: str) -> dict[str, NDArray[np.uint8]]:
    """Check shapes, dtypes, counts and label range; labels of any integer dtype become uint8.

    Returns C-contiguous arrays: x (n, 28, 28) uint8, y (n,) uint8.
    """
    out: dict[str, NDArray[np.uint8]] = {}
    for split in SPLITS:
        xn, yn = f"x_{split}", f"y_{split}"
        x = np.asarray(arrays[xn])
        y = np.asarray(arrays[yn])
        if x.dtype != np.uint8:
            raise DataFormatError(f"{where}: {xn} must be uint8 pixels, got dtype {x.dtype}")
        if x.ndim != 3 or x.shape[1:] != (SIDE, SIDE):
            raise DataFormatError(f"{where}: {xn} must have shape (n, 28, 28), got {x.shape}")
        if y.ndim != 1:
            raise DataFormatError(f"{where}: {yn} must have shape (n,), got {y.shape}")
        if x.shape[0] != y.shape[0]:
            raise DataFormatError(
                f"{where}: {x.shape[0]} {split} images but {y.shape[0]} {split} labels"
            )
        if x.shape[0] == 0:
            raise DataFormatError(f"{where}: the {split} split holds no images")
        if x.shape[0] > MAX_ITEMS:
            raise DataFormatError(
                f"{where}: {x.shape[0]} {split} images, more than the limit of {MAX_ITEMS}"
            )
        if not np.issubdtype(y.dtype, np.integer):
            raise DataFormatError(f"{where}: {yn} must hold integer labels, got dtype {y.dtype}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi > 9:
            raise DataFormatError(f"{where}: {yn} holds labels in {lo}..{hi}; expected 0..9")
        out[xn] = np.ascontiguousarray(x)
        out[yn] = np.ascontiguousarray(y, dtype=np.uint8)
    return out


# --- IDX ------------------------------------------------------------------------------------


def _idx_paths(folder: Path) -> dict[str, Path]:
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


def _idx_source_digest(paths: Mapping[str, Path]) -> str:
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
        raise DataFormatError(f"{path}: too short for an IDX header ({len(head)} bytes)")
    magic = int.from_bytes(head, "big")
    if magic != want_magic:
        raise DataFormatError(
            f"{path}: wrong IDX magic 0x{magic:08x}; expected 0x{want_magic:08x} "
            f"(uint8 {what}, {ndim} dimension{'s' if ndim > 1 else ''})"
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
    got = _read_exact(f, out.data.cast("B"))
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


def _load_idx(
    folder: Path, paths: Mapping[str, Path], progress: Progress | None
) -> dict[str, NDArray[np.uint8]]:
    arrays: dict[str, NDArray[np.uint8]] = {}
    for name in ARRAY_NAMES:
        _say(progress, f"parsing {paths[name]}")
        arrays[name] = read_idx(paths[name], images=name.startswith("x_"))
    return _validate(arrays, f"MNIST IDX folder {folder}")


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
    return _validate(arrays, str(path))


# --- download -------------------------------------------------------------------------------


def _check_url(url: str) -> str:
    """Refuse non-HTTP(S) URLs and embedded credentials; return the URL as shown to users
    (query string elided, in case it carries a signature)."""
    parts = urllib.parse.urlsplit(url)
    shown = urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "…" if parts.query else "", "")
    )
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInputError(f"download URL {shown!r} must be http:// or https:// with a host")
    if "@" in parts.netloc:
        raise InvalidInputError(f"download URL {shown!r} must not embed credentials")
    return shown


def _download(url: str, dest: IO[bytes], progress: Progress | None) -> str:
    """Stream ``url`` into ``dest``; return the sha256 of the bytes received.

    Raises DownloadError for anything the network did: refused, timed out, an HTTP error
    status, a body cut short of its Content-Length, or more than MAX_DOWNLOAD_BYTES.
    """
    shown = _check_url(url)
    h = hashlib.sha256()
    total = 0
    expected: int | None = None
    try:
        req = urllib.request.Request(url, headers={"User-Agent": "softmax-pipe"})
        with urllib.request.urlopen(req, timeout=DOWNLOAD_TIMEOUT) as resp:
            length = resp.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            if expected is not None and expected > MAX_DOWNLOAD_BYTES:
                raise DownloadError(
                    f"download {shown}: {expected} bytes announced, over the limit "
                    f"{MAX_DOWNLOAD_BYTES}"
                )
            next_report = 0
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise DownloadError(
                        f"download {shown}: more than {MAX_DOWNLOAD_BYTES} bytes, giving up"
                    )
                h.update(chunk)
                dest.write(chunk)
                if progress is not None and total >= next_report:
                    _say(progress, _download_message(shown, total, expected))
                    next_report = total + 4 * _CHUNK
    except urllib.error.HTTPError as e:
        raise DownloadError(f"download {shown} failed: HTTP {e.code} {e.reason}") from e
    except urllib.error.URLError as e:
        raise DownloadError(f"download {shown} failed: {e.reason}") from e
    except (OSError, http.client.HTTPException, ValueError) as e:  # timeouts, resets, ...
        raise DownloadError(f"download {shown} failed: {type(e).__name__}: {e}") from e
    if expected is not None and total != expected:
        raise DownloadError(
            f"download {shown} cut short: received {total} of {expected} bytes; try again"
        )
    _say(progress, _download_message(shown, total, expected, done=True))
    return h.hexdigest()


def _download_message(url: str, total: int, expected: int | None, done: bool = False) -> str:
    mb = total / 1e6
    of = f" / {expected / 1e6:.1f}" if expected else ""
    return f"{'downloaded' if done else 'downloading'} {url}: {mb:.1f}{of} MB"


def _load_download(
    url: str, sha256: str, tmp_root: Path, progress: Progress | None
) -> dict[str, NDArray[np.uint8]]:
    shown = _check_url(url)
    tmp_root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".tmp-download-", suffix=".npz", dir=tmp_root)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            actual = _download(url, f, progress)
        if actual != sha256.lower():
            raise IntegrityError(
                f"download {shown}: sha256 mismatch: expected {sha256.lower()}, got {actual}; "
                "the file was discarded"
            )
        return read_npz(tmp)
    finally:
        tmp.unlink(missing_ok=True)


# --- keras ----------------------------------------------------------------------------------


def _load_keras(progress: Progress | None) -> dict[str, NDArray[np.uint8]]:
    """Adapter over ``keras.datasets.mnist.load_data()``, imported here, lazily."""
    try:
        import keras  # optional extra: softmax-pipe[keras]
    except ImportError as e:
        raise InvalidInputError(
            f"source 'keras' could not import keras ({e}); install keras and a backend "
            "(pip install 'softmax-pipe[keras]') or use --source download"
        ) from e
    _say(progress, "loading MNIST through keras.datasets.mnist.load_data()")
    try:
        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    except (TypeError, ValueError) as e:
        raise DataFormatError(
            f"keras.datasets.mnist.load_data() returned something unexpected: {e}"
        ) from e
    except Exception as e:  # keras wraps network failures in a bare Exception
        raise DownloadError(f"keras.datasets.mnist.load_data() failed: {e}") from e
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return _validate(arrays, "keras.datasets.mnist.load_data()")


# --- cache ----------------------------------------------------------------------------------


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def _discard(path: Path) -> None:
    """Remove a folder so that it vanishes at once: rename aside, then delete."""
    trash = path.with_name(f".trash-{path.name}-{uuid.uuid4().hex[:8]}")
    try:
        path.rename(trash)
    except FileNotFoundError:
        return  # someone else discarded it first
    except OSError as e:
        raise StorageError(f"cannot remove the bad cache entry {path}: {e}") from e
    _remove(trash)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _sweep_stale(root: Path) -> None:
    """Delete temporary leftovers of crashed loaders (older than a day)."""
    now = time.time()
    try:
        entries = list(root.iterdir())
    except OSError:
        return
    for p in entries:
        if p.name.startswith((".tmp-", ".trash-")):
            with contextlib.suppress(OSError):
                if now - p.lstat().st_mtime > _STALE_TMP_SECONDS:
                    _remove(p)


def _open_entry(entry: Path) -> tuple[dict[str, Any], dict[str, NDArray[np.uint8]]]:
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
        actual = file_sha256(path)
        if actual != shas[name]:
            raise ValueError(f"{path.name}: sha256 {actual} does not match the manifest")
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


def _write_entry(
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
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key[:24]}-", dir=root))
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
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
        try:
            tmp.rename(entry)
        except OSError:
            if not entry.exists():
                raise
            # Lost the race to a concurrent loader: keep theirs, drop ours.
    except OSError as e:
        raise StorageError(f"cannot write the MNIST cache entry {entry}: {e}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return entry


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
        source: ``keras``, ``download``, a folder of IDX files, an ``.npz``, or ``None`` for
            the default (see :func:`resolve_source`).
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
    resolved = resolve_source(source)
    kind = _kind(resolved)
    root = Path(cache_dir).expanduser() / "mnist"
    if root.is_dir():
        _sweep_stale(root)

    idx_paths: dict[str, Path] = {}
    if kind == "idx":
        folder = Path(resolved)
        idx_paths = _idx_paths(folder)
        label = f"idx:{folder}"
        source_digest: str | None = _idx_source_digest(idx_paths)
    elif kind == "npz":
        label = f"npz:{resolved}"
        try:
            source_digest = file_sha256(Path(resolved))
        except OSError as e:
            raise StorageError(f"cannot read {resolved}: {e}") from e
    elif kind == "download":
        label = f"download:{_check_url(url)}"
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
            raise InvalidInputError(f"sha256 {sha256!r} is not 64 hex digits")
        source_digest = sha256.lower()
    else:
        label = "keras"
        source_digest = None  # known only once keras has returned the arrays

    parsed: dict[str, NDArray[np.uint8]] | None = None
    if kind == "keras":
        parsed = _load_keras(progress)
        source_digest = dataset_digest(parsed)
    assert source_digest is not None
    key = f"{kind}-{source_digest}"
    entry = root / key

    if entry.exists():
        try:
            manifest, arrays = _open_entry(entry)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            _say(progress, f"cache entry {entry} failed verification ({e}); rebuilding")
            _discard(entry)
        else:
            _say(progress, f"cache hit: {entry}")
            return _dataset(arrays, manifest, label, entry, cached=True)

    if parsed is None:
        if kind == "idx":
            parsed = _load_idx(Path(resolved), idx_paths, progress)
        elif kind == "npz":
            _say(progress, f"parsing {resolved}")
            parsed = read_npz(Path(resolved))
        else:
            parsed = _load_download(url, source_digest, root, progress)
    _say(progress, f"writing cache entry {entry}")
    _write_entry(root, key, parsed, source=label, source_digest=source_digest)
    del parsed
    try:
        manifest, arrays = _open_entry(entry)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise StorageError(f"the MNIST cache entry {entry} just written is unreadable: {e}") from e
    return _dataset(arrays, manifest, label, entry, cached=False)


def _dataset(
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


# --- cached features ------------------------------------------------------------------------


def cached_features(
    ds: Dataset, split: Literal["train", "test"], steps: Sequence[str]
) -> NDArray[np.float32]:
    """(n, 784) float32 features of one split, cached beside the dataset and memory-mapped.

    Computed with :func:`softmax_core.preprocess.features` and stored as
    ``ds.path/features/<'+'.join(steps)>/<split>.npy``, with ``<split>.json`` holding its
    sha256, shape, steps and the dataset digest. A later call verifies the sha256 and
    memory-maps the file; anything that does not verify is recomputed, never used.
    """
    images, _ = ds.split(split)
    steps = preprocess.validate_steps(steps)  # also makes the folder name safe
    folder = ds.path / "features" / "+".join(steps)
    npy, meta_path = folder / f"{split}.npy", folder / f"{split}.json"
    shape = [int(images.shape[0]), SIDE * SIDE]
    try:
        meta = json.loads(meta_path.read_text())
        ok = (
            meta.get("format") == FEATURES_FORMAT
            and meta.get("dataset_digest") == ds.digest
            and meta.get("steps") == list(steps)
            and meta.get("shape") == shape
            and file_sha256(npy) == meta.get("sha256")
        )
        if ok:
            out = np.load(npy, mmap_mode="r", allow_pickle=False)
            if out.dtype == np.float32 and list(out.shape) == shape:
                return out
    except (OSError, ValueError, AttributeError):
        pass
    feats = preprocess.features(images, steps)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _sweep_stale(folder)
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{split}-", suffix=".npy", dir=folder)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            digest = save_npy(tmp, feats)
            os.replace(tmp, npy)
        finally:
            tmp.unlink(missing_ok=True)
        meta = {
            "format": FEATURES_FORMAT,
            "dataset_digest": ds.digest,
            "split": split,
            "steps": list(steps),
            "shape": shape,
            "sha256": digest,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{split}-", suffix=".json", dir=folder)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(meta, f, indent=2, sort_keys=True)
            os.replace(tmp, meta_path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise StorageError(f"cannot write cached features under {folder}: {e}") from e
    del feats
    return np.load(npy, mmap_mode="r", allow_pickle=False)
