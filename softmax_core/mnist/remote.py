"""The remote sources: keras.datasets.mnist.load_data, and a direct download by pooch, sha256
checked (or keras's cached copy of the same file)."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import urllib.parse
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from softmax_core import urls
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
    """Refuse anything but a well-formed http(s) URL without credentials (InvalidInputError,
    exit 2, the URL shown redacted); return the URL as shown to users (no credentials,
    the query string elided, in case it carries a signature: :func:`softmax_core.urls.redact`)."""
    return urls.check_url(url, "download URL")


class _Meter:
    """pooch's progress-bar protocol (``total``, ``update``, ``reset``, ``close``): reports
    to ``progress`` every few MB; stops a download announced (``total``, the Content-Length)
    or grown over MAX_DOWNLOAD_BYTES."""

    total = 0

    def __init__(self, shown: str, progress: Progress | None) -> None:
        self.shown, self.progress, self.count, self.next_report = shown, progress, 0, 0

    def update(self, n: int) -> None:
        self.count += n  # pooch counts whole chunks: at most one over
        if max(self.total, self.count - _CHUNK) > MAX_DOWNLOAD_BYTES:
            got = f"{self.total} bytes announced" if self.total else "more bytes than that"
            raise DownloadError(
                f"download {self.shown}: {got}, over the limit {MAX_DOWNLOAD_BYTES}"
            )
        if self.count >= self.next_report:
            of = f" / {self.total / 1e6:.1f}" if self.total else ""
            say(self.progress, f"downloading {self.shown}: {self.count / 1e6:.1f}{of} MB")
            self.next_report = self.count + 4 * _CHUNK

    def reset(self) -> None:
        self.count = 0

    def close(self) -> None:
        pass


def _network_error(e: Exception, shown: str, query: str) -> DownloadError:
    """One line for what requests raised, the URL's query string elided (a signature)."""
    import requests

    if isinstance(e, requests.HTTPError) and e.response is not None:
        why = f"HTTP {e.response.status_code} {e.response.reason}"
    elif isinstance(e, requests.exceptions.ChunkedEncodingError):
        return DownloadError(f"download {shown} cut short ({e}); try again")
    else:
        why = f"{type(e).__name__}: {e}"
    return DownloadError(f"download {shown} failed: {why.replace(query, '…') if query else why}")


def load_download(
    url: str, sha256: str, tmp_root: Path, progress: Progress | None
) -> dict[str, NDArray[np.uint8]]:
    """``pooch.retrieve(url, known_hash=sha256)`` into a temporary folder under ``tmp_root``,
    parsed, then deleted: pooch streams into a temporary file, checks its sha256 and keeps
    it only when it matches. Raises DownloadError for anything the network did (refused,
    timed out, an HTTP error status, a body cut short, more than MAX_DOWNLOAD_BYTES) and
    IntegrityError for a sha256 mismatch."""
    import pooch  # here, not at import: only a download needs it (and requests)
    import requests

    shown = check_url(url)
    tmp_root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".tmp-download-", dir=tmp_root))
    pooch.get_logger().setLevel("WARNING")  # its "Downloading ... to ..." names the full URL
    meter = _Meter(shown, progress)
    downloader = pooch.HTTPDownloader(
        progressbar=meter,
        chunk_size=_CHUNK,
        timeout=DOWNLOAD_TIMEOUT,
        headers={"User-Agent": "softmax-pipe"},
    )
    try:
        try:
            path = pooch.retrieve(
                url,
                known_hash=f"sha256:{sha256.lower()}",
                fname="mnist.npz",
                path=folder,
                downloader=downloader,
            )
        except requests.RequestException as e:
            raise _network_error(e, shown, urllib.parse.urlsplit(url).query) from e
        except ValueError as e:  # pooch: "SHA256 hash of downloaded file ... does not match"
            got = re.search(r"got ([0-9a-f]{64})", str(e))
            raise IntegrityError(
                f"download {shown}: sha256 mismatch: expected {sha256.lower()}, "
                f"got {got[1] if got else f'another file ({e})'}; the file was discarded"
            ) from e
        size = Path(path).stat().st_size
        say(progress, f"downloaded {shown}: {size / 1e6:.1f} MB")
        return read_npz(Path(path))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- keras ----------------------------------------------------------------------------------


KERAS_BACKEND = "KERAS_BACKEND"  # keras 3's variable: the backend it imports
# keras 3's backends and the module each needs.
KERAS_BACKENDS = {
    "jax": "jax",
    "tensorflow": "tensorflow",
    "torch": "torch",
    "numpy": "numpy",
    "openvino": "openvino",
}


def keras_home() -> Path:
    """keras's folder: ``$KERAS_HOME``, else ``~/.keras`` (keras's own rule, read here
    without importing keras)."""
    return Path(os.environ.get("KERAS_HOME") or str(Path("~/.keras").expanduser()))


def keras_mnist_file() -> Path:
    """Where keras caches ``mnist.npz``: ``$KERAS_HOME/datasets/``, else ``~/.keras/datasets/``."""
    return keras_home() / "datasets" / "mnist.npz"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def keras_backend() -> str | None:
    """The backend to start keras with, or None to leave keras's own choice.

    keras 3 imports the backend named by ``$KERAS_BACKEND``, else by its ``keras.json``,
    else TensorFlow, and ``import keras`` fails when that one is not installed (``pip
    install 'softmax-pipe[keras]'`` installs JAX, not TensorFlow). So: a backend set in
    the environment is the user's choice and kept; one in ``keras.json`` is kept when it
    is installed (keras writes its default, ``tensorflow``, there on a first import, even
    a failed one, so that entry is no choice when TensorFlow is absent); otherwise JAX
    when it is installed. None also when keras is imported already (too late to choose).
    """
    if "keras" in sys.modules or os.environ.get(KERAS_BACKEND, "").strip():
        return None
    configured = None
    try:
        doc = json.loads((keras_home() / "keras.json").read_text())
        configured = doc.get("backend") if isinstance(doc, dict) else None
    except (OSError, ValueError):
        pass
    module = KERAS_BACKENDS.get(str(configured)) if configured else None
    if module is not None and _importable(module):
        return None
    return "jax" if _importable("jax") else None


def use_keras_backend() -> str | None:
    """Set ``$KERAS_BACKEND`` to :func:`keras_backend`'s choice (this process and its
    children) before keras is imported; returns the backend set, or None."""
    chosen = keras_backend()
    if chosen is not None:
        os.environ[KERAS_BACKEND] = chosen
    return chosen


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
    prints (its download bar) goes to stderr, so stdout stays the command's output. Its
    backend is chosen first (:func:`use_keras_backend`: JAX when none is chosen)."""
    chosen = use_keras_backend()
    if chosen is not None:
        say(progress, f"keras backend: {chosen} (no other chosen; set {KERAS_BACKEND} to pick)")
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
