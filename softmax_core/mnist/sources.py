"""Which source a name means: keras, download, a folder of IDX files or an npz."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import (
    DataNotFoundError,
    InvalidInputError,
    StorageError,
)
from softmax_core.mnist.arrays import (
    Progress,
    dataset_digest,
    file_sha256,
    say,
)
from softmax_core.mnist.formats import idx_paths, idx_source_digest, load_idx, read_npz
from softmax_core.mnist.remote import (
    check_url,
    keras_mnist_file,
    load_download,
    load_keras,
    reuse_keras_file,
)
from softmax_core.urls import redact

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
    read by :class:`softmax_core.settings.Settings`, not here) becomes ``download`` when
    keras has cached ``mnist.npz`` already (``~/.keras/datasets/``: ``download`` reuses it,
    sha256-verified, without importing keras), else ``keras`` when keras is installed,
    else ``download``. ``keras`` and ``download`` are kept as they are. Anything
    else is a path (``~`` expanded; an ``idx:`` or ``npz:`` prefix, as in
    :attr:`Dataset.source`, is accepted) to a folder of IDX files or to an ``.npz`` file,
    returned absolute.

    Raises:
        DataNotFoundError: the path does not exist.
        InvalidInputError: ``keras`` without keras installed; a path that is neither a
            folder nor an ``.npz`` file.
    """
    if source is None:
        if keras_mnist_file().is_file():
            return "download"
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
    return _local_source(source, text)


def _local_source(source: str, text: str) -> str:
    """The absolute path a source ``text`` (``source`` stripped) names (see resolve_source)."""
    if "://" in text:  # never a path; and shown, it must not show a password
        raise InvalidInputError(
            f"MNIST source {redact(text)!r} is a URL; expected 'keras', 'download' (the "
            "published file, sha256 checked), a folder of IDX files or an .npz file"
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


def kind_of(resolved: str) -> str:
    if resolved in ("keras", "download"):
        return resolved
    return "idx" if Path(resolved).is_dir() else "npz"


# --- one source, picked once ------------------------------------------------------------------


class Source(Protocol):
    """What ``load_mnist`` needs of a source: a label, a digest that keys its cache entry
    (computed without parsing where the source allows), and its arrays."""

    kind: str
    label: str

    def digest(self, progress: Progress | None) -> str: ...

    def load(self, progress: Progress | None) -> dict[str, NDArray[np.uint8]]: ...


@dataclass
class IdxSource:
    folder: Path
    kind: str = "idx"

    def __post_init__(self) -> None:
        self.paths = idx_paths(self.folder)
        self.label = f"idx:{self.folder}"

    def digest(self, progress: Progress | None) -> str:
        return idx_source_digest(self.paths)

    def load(self, progress: Progress | None) -> dict[str, NDArray[np.uint8]]:
        return load_idx(self.folder, self.paths, progress)


@dataclass
class NpzSource:
    path: Path
    kind: str = "npz"

    def __post_init__(self) -> None:
        self.label = f"npz:{self.path}"

    def digest(self, progress: Progress | None) -> str:
        try:
            return file_sha256(self.path)
        except OSError as e:
            raise StorageError(f"cannot read {self.path}: {e}") from e

    def load(self, progress: Progress | None) -> dict[str, NDArray[np.uint8]]:
        say(progress, f"parsing {self.path}")
        return read_npz(self.path)


@dataclass
class DownloadSource:
    url: str
    sha256: str
    tmp_root: Path
    kind: str = "download"

    def __post_init__(self) -> None:
        self.label = f"download:{check_url(self.url)}"
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256.lower()):
            raise InvalidInputError(f"sha256 {self.sha256!r} is not 64 hex digits")
        self.sha256 = self.sha256.lower()

    def digest(self, progress: Progress | None) -> str:
        return self.sha256  # the published digest: a warm load needs no network

    def load(self, progress: Progress | None) -> dict[str, NDArray[np.uint8]]:
        """keras's cached copy when it is the published file, else the download."""
        reused = reuse_keras_file(self.sha256, progress)
        if reused is not None:
            return reused
        return load_download(self.url, self.sha256, self.tmp_root, progress)


@dataclass
class KerasSource:
    """keras's own loader; its digest is that of the arrays it returns (loaded once)."""

    kind: str = "keras"
    label: str = "keras"

    def __post_init__(self) -> None:
        self._arrays: dict[str, NDArray[np.uint8]] | None = None

    def digest(self, progress: Progress | None) -> str:
        return dataset_digest(self.load(progress))

    def load(self, progress: Progress | None) -> dict[str, NDArray[np.uint8]]:
        if self._arrays is None:
            self._arrays = load_keras(progress)
        return self._arrays


def open_source(resolved: str, *, url: str, sha256: str, tmp_root: Path) -> Source:
    """The :class:`Source` for a :func:`resolve_source` result."""
    kind = kind_of(resolved)
    if kind == "idx":
        return IdxSource(Path(resolved))
    if kind == "npz":
        return NpzSource(Path(resolved))
    if kind == "download":
        return DownloadSource(url, sha256, tmp_root)
    return KerasSource()
