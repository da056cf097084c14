"""The remote sources: keras.datasets.mnist.load_data and a direct download, sha256 checked."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import urllib.parse
from pathlib import Path
from typing import IO

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import (
    DataFormatError,
    DownloadError,
    IntegrityError,
    InvalidInputError,
)
from softmax_core.mnist.arrays import (
    _CHUNK,
    DOWNLOAD_TIMEOUT,
    MAX_DOWNLOAD_BYTES,
    Progress,
    file_sha256,
    say,
    validate_arrays,
)
from softmax_core.mnist.formats import read_npz

# --- download -------------------------------------------------------------------------------


def check_url(url: str) -> str:
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
    import http.client  # here, not at import: only a download needs them
    import urllib.error
    import urllib.request

    shown = check_url(url)
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
                    say(progress, _download_message(shown, total, expected))
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
    say(progress, _download_message(shown, total, expected, done=True))
    return h.hexdigest()


def _download_message(url: str, total: int, expected: int | None, done: bool = False) -> str:
    mb = total / 1e6
    of = f" / {expected / 1e6:.1f}" if expected else ""
    return f"{'downloaded' if done else 'downloading'} {url}: {mb:.1f}{of} MB"


def load_download(
    url: str, sha256: str, tmp_root: Path, progress: Progress | None
) -> dict[str, NDArray[np.uint8]]:
    shown = check_url(url)
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


def keras_mnist_file() -> Path:
    """Where keras caches ``mnist.npz``: ``$KERAS_HOME/datasets/``, else ``~/.keras/datasets/``
    (keras's own rule, read here without importing keras)."""
    home = os.environ.get("KERAS_HOME") or str(Path("~/.keras").expanduser())
    return Path(home) / "datasets" / "mnist.npz"


def reuse_keras_file(sha256: str, progress: Progress | None) -> dict[str, NDArray[np.uint8]] | None:
    """The arrays of keras's cached ``mnist.npz`` when it is the published file (its sha256
    is ``sha256``), so a Keras user downloads nothing; ``None`` when there is no such file."""
    path = keras_mnist_file()
    if not path.is_file():
        return None
    try:
        actual = file_sha256(path)
    except OSError as e:
        say(progress, f"cannot read keras's {path} ({e}); downloading instead")
        return None
    if actual != sha256.lower():
        say(progress, f"keras's {path} is not the published file (sha256 {actual}); downloading")
        return None
    say(progress, f"reusing keras's {path} (sha256 verified, nothing downloaded)")
    return read_npz(path)


def load_keras(progress: Progress | None) -> dict[str, NDArray[np.uint8]]:
    """Adapter over ``keras.datasets.mnist.load_data()``, imported here, lazily.

    keras checks the file's sha256 itself (in its cache and after a download); what keras
    prints (its download bar) goes to stderr, so stdout stays the command's output."""
    try:
        import keras  # optional extra: softmax-pipe[keras]
    except ImportError as e:
        raise InvalidInputError(
            f"source 'keras' could not import keras ({e}); install keras and a backend "
            "(pip install 'softmax-pipe[keras]') or use --source download"
        ) from e
    say(progress, "loading MNIST through keras.datasets.mnist.load_data()")
    try:
        with contextlib.redirect_stdout(sys.stderr):
            result = keras.datasets.mnist.load_data()
    except ValueError as e:
        if "hash" in str(e):  # "Incomplete or corrupted file detected. The sha256 file hash..."
            raise IntegrityError(f"keras.datasets.mnist.load_data(): {e}") from e
        raise DownloadError(f"keras.datasets.mnist.load_data() failed: {e}") from e
    except Exception as e:  # keras wraps network failures in a bare Exception
        raise DownloadError(f"keras.datasets.mnist.load_data() failed: {e}") from e
    try:
        (x_train, y_train), (x_test, y_test) = result
    except (TypeError, ValueError) as e:
        raise DataFormatError(
            f"keras.datasets.mnist.load_data() returned something unexpected: {e}"
        ) from e
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return validate_arrays(arrays, "keras.datasets.mnist.load_data()")
