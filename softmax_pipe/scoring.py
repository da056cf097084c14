"""Batch scoring of image folders: discover, decode in parallel, score in batches, stream rows.

The pieces, each usable alone (the ``score`` command and the ``batch scoring`` flow are
both built from them)::

    load_model(ref, ...)     a registry reference (name@alias, name:version, name) or a model
                             file -> ScoringModel (weights + the preprocessing they need)
    Discovery(path)          the images under PATH, walked recursively in a deterministic
                             order (sorted by name, folders and files interleaved);
                             symlinked folders are followed once (no loops); other files
                             are counted as skipped
    decode_items(items)      image files -> MNIST-style 28×28 digits (softmax_core.images),
                             an error reason for each file that failed
    prepare_items(items, m)  decode_items + the model's recorded preprocessing + the
                             prediction: what a worker process does with one batch
    score_batches(...)       Item stream -> ScoredBatch stream, in order, with at most a
                             few batches in flight: memory stays flat whatever the size
    RowWriter / open_output  CSV or JSON Lines rows to stdout, or to a temporary file that
                             is renamed over FILE only once everything is written
    ScoreSummary             counts per class, failures with reasons, skipped files, low
                             confidence, for stderr
    score_path(...)          all of the above, for one PATH

Output columns: ``path`` (relative to PATH, ``/``-separated; the file name when PATH
is a file), ``label``, ``confidence``, ``status`` (``ok``/``error``), ``error`` (the
reason), then ``p0``..``p9`` with ``probs``. Failed images are rows with
``status=error``; the run goes on.

The parent process keeps its BLAS to one thread while the workers decode (through
threadpoolctl, a core dependency); worker processes
limit theirs the same way and set ``OMP_NUM_THREADS=1`` & co. for anything they load.
"""

from __future__ import annotations

import collections
import contextlib
import csv
import gc
import itertools
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
from numpy.typing import NDArray

from softmax_core import images
from softmax_core.errors import (
    DataNotFoundError,
    InvalidInputError,
    SoftmaxPipeError,
)

DEFAULT_MODEL = "mnist@champion"
DEFAULT_BATCH_SIZE = 256
DEFAULT_MIN_CONFIDENCE = 0.5
DEFAULT_MAX_PIXELS = images.DEFAULT_MAX_PIXELS
FORMATS = ("csv", "jsonl")
COLUMNS = ("path", "label", "confidence", "status", "error")
PROB_COLUMNS = tuple(f"p{i}" for i in range(10))
N_CLASSES = 10
STACK_MAX_PIXELS = 128 * 128  # images up to this size are normalised as a stack, per shape
MAX_LISTED_FAILURES = 20  # the summary names this many failed files; the output has them all
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def default_workers() -> int:
    """One decoding process per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# --- the model ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoringModel:
    """Weights plus the preprocessing they were trained with; picklable (flows ship it)."""

    W: NDArray[np.float32]
    b: NDArray[np.float32]
    steps: tuple[str, ...]
    name: str  # what the summary calls it: "mnist:3" or the model file's path

    @classmethod
    def from_model_file(cls, model: Any, name: str) -> ScoringModel:
        from softmax_core.preprocess import SIDE, validate_steps

        W = np.asarray(model.W, dtype=np.float32)
        b = np.asarray(model.b, dtype=np.float32)
        if W.shape != (SIDE * SIDE, N_CLASSES) or b.shape != (N_CLASSES,):
            raise InvalidInputError(
                f"model {name} has W{W.shape}, b{b.shape}; scoring images needs "
                f"W({SIDE * SIDE}, {N_CLASSES}) and b({N_CLASSES},)"
            )
        return cls(W=W, b=b, steps=validate_steps(model.steps), name=name)

    def predict_proba(self, digits: NDArray[np.floating]) -> NDArray[np.float32]:
        """(n, 28, 28) digits in [0, 1] -> (n, 10) class probabilities."""
        from softmax_core.preprocess import features

        return self.proba_from_features(features(digits, self.steps))

    def proba_from_features(self, X: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, 784) features (the model's steps applied) -> (n, 10) probabilities."""
        from softmax_core.softmax import softmax

        return softmax(X @ self.W + self.b).astype(np.float32, copy=False)


def is_model_file(ref: str) -> bool:
    """``--model`` names a file when it exists as one or ends in ``.npz``."""
    return ref.lower().endswith(".npz") or os.path.isfile(ref)


def load_model(
    ref: str, *, registry: str, endpoint_url: str | None = None, cache_dir: Path
) -> ScoringModel:
    """A model file path, or a registry reference pulled (verified, cached) from ``registry``.

    Raises ModelNotFoundError / DataNotFoundError (exit 3) when it does not exist.
    """
    from softmax_core.modelfile import ModelFile

    if is_model_file(ref):
        return ScoringModel.from_model_file(ModelFile.load(ref), ref)
    from registry import Registry

    with Registry.open(registry, endpoint_url=endpoint_url, cache_dir=cache_dir) as reg:
        manifest, model = reg.load(ref)
    return ScoringModel.from_model_file(model, manifest.ref)


# --- discovery ------------------------------------------------------------------------------


class Item(NamedTuple):
    """One file to score: its output name, its path, and a reason when it cannot be read."""

    rel: str
    path: str
    problem: str | None = None


def _printable(name: str) -> str:
    """File names that are not valid UTF-8 get their odd bytes escaped for the output."""
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return name


class Discovery:
    """The image files under a path, in a deterministic order; iterate it (once or more).

    A folder is walked recursively; within each folder, entries are sorted by name and
    sub-folders are visited where they sort, so the order is that of the relative paths'
    components. Symlinked folders are followed, each real folder at most once (a loop is
    counted in ``loops``, not walked again). Files whose extension (any case) is not in
    ``softmax_core.images.IMAGE_EXTENSIONS`` are counted in ``skipped`` (by extension in
    ``skipped_by_ext``). A file named explicitly as PATH is scored whatever its extension.

    Raises InvalidInputError (exit 2) when the path does not exist or is neither a file
    nor a folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.root = Path(path)
        try:
            st = os.stat(self.root)
        except FileNotFoundError:
            raise InvalidInputError(
                f"{self.root} does not exist; expected an image file or a folder of images"
            ) from None
        except OSError as e:
            raise InvalidInputError(f"{self.root} cannot be read: {e.strerror or e}") from None
        self.is_dir = stat.S_ISDIR(st.st_mode)
        if not self.is_dir and not stat.S_ISREG(st.st_mode):
            raise InvalidInputError(
                f"{self.root} is not a regular file or a folder; expected an image or a folder"
            )
        self.skipped = 0
        self.skipped_by_ext: collections.Counter[str] = collections.Counter()
        self.loops = 0
        self.found = 0

    def __iter__(self) -> Iterator[Item]:
        self.skipped, self.loops, self.found = 0, 0, 0
        self.skipped_by_ext = collections.Counter()
        if not self.is_dir:
            self.found = 1
            yield Item(_printable(self.root.name), str(self.root))
            return
        yield from self._walk()

    def _walk(self) -> Iterator[Item]:
        root = str(self.root)
        st = os.stat(root)
        seen = {(st.st_dev, st.st_ino)}
        # A stack of (folder path, prefix, iterator over its sorted entries): no recursion,
        # so deep trees cannot overflow; each open folder holds only its names.
        listing, problem = self._list(root)
        if problem is not None:
            raise InvalidInputError(f"{self.root}: {problem}")
        # Folder paths end with a separator, so a child's path is a concatenation.
        stack: list[tuple[str, str, Iterator[tuple[str, int]]]] = [
            (os.path.join(root, ""), "", iter(listing))
        ]
        while stack:
            folder, prefix, entries = stack[-1]
            entry = next(entries, None)
            if entry is None:
                stack.pop()
                continue
            name, kind = entry
            path = folder + name
            rel = prefix + _printable(name)
            if kind == _DIR:
                try:
                    sub = os.stat(path)
                except OSError as e:
                    self.found += 1
                    yield Item(rel + "/", path, f"unreadable folder: {e.strerror or e}")
                    continue
                key = (sub.st_dev, sub.st_ino)
                if key in seen:
                    self.loops += 1
                    continue
                seen.add(key)
                listing, problem = self._list(path)
                if problem is not None:
                    self.found += 1
                    yield Item(rel + "/", path, problem)
                    continue
                stack.append((path + os.sep, rel + "/", iter(listing)))
            else:
                self.found += 1
                yield Item(rel, path, _KIND_PROBLEMS.get(kind))

    def _list(self, folder: str) -> tuple[list[tuple[str, int]], str | None]:
        """Sorted (name, kind) pairs of a folder's images and sub-folders (other files are
        counted as skipped here, not kept), or a reason it cannot be listed."""
        out: list[tuple[str, int]] = []
        skipped: list[str] = []
        try:
            with os.scandir(folder) as it:
                for e in it:
                    kind = _kind_of(e)
                    if kind == _SKIP:
                        skipped.append(_ext_label(e.name))
                    else:
                        out.append((e.name, kind))
        except OSError as e:
            return [], f"unreadable folder: {e.strerror or e}"
        self.skipped += len(skipped)
        self.skipped_by_ext.update(skipped)
        out.sort()
        return out, None


_IMAGE, _DIR, _SKIP, _NOT_REGULAR, _BROKEN_LINK = range(5)
_KIND_PROBLEMS = {
    _NOT_REGULAR: "unreadable: not a regular file",
    _BROKEN_LINK: "unreadable: broken symlink",
}


def _kind_of(entry: os.DirEntry[str]) -> int:
    """Classify a folder entry, with no system call for plain files and folders."""
    try:
        if entry.is_dir():
            return _DIR
        if not images.is_image_name(entry.name):
            return _SKIP
        if entry.is_file():
            return _IMAGE
        if entry.is_symlink() and not os.path.exists(entry.path):
            return _BROKEN_LINK
        return _NOT_REGULAR
    except OSError:
        return _NOT_REGULAR if images.is_image_name(entry.name) else _SKIP


def _ext_label(name: str) -> str:
    ext = os.path.splitext(name)[1].lower()
    return ext if ext and len(ext) <= 12 else "(none)" if not ext else "(other)"


# --- decoding: runs in worker processes -----------------------------------------------------


def decode_items(
    items: Sequence[tuple[str, str | None]], max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[NDArray[np.float32], list[str | None]]:
    """(path, problem) pairs -> (digits of the ok ones (k, 28, 28), a reason or None for each).

    Digits are MNIST-style (``softmax_core.images``), before the model's own steps.

    Small images of one shape (e.g. 28×28 scans) are normalised as a stack
    (``images.normalize_stack``, identical to one at a time, much faster); large ones one
    by one as they come, so a chunk of photos never holds more than one decoded photo.
    Any failure of one image becomes its reason; nothing here raises for one bad file.
    """
    n = len(items)
    errors: list[str | None] = [None] * n
    digits = np.zeros((n, images.SIDE, images.SIDE), dtype=np.float32)
    small: dict[tuple[int, int, str], list[tuple[int, NDArray[Any]]]] = {}
    for i, (path, problem) in enumerate(items):
        if problem is not None:
            errors[i] = problem
            continue
        try:
            gray = images.gray_pixels(images.open_image(path, max_pixels=max_pixels))
            if gray.size <= STACK_MAX_PIXELS:
                small.setdefault((*gray.shape, gray.dtype.char), []).append((i, gray))
            else:
                digits[i] = images.normalize(gray)
        except images.ImageError as e:
            errors[i] = str(e)
        except Exception as e:  # one bad image never stops the batch
            errors[i] = f"corrupt: cannot convert: {e}"
    for members in small.values():
        index = [i for i, _ in members]
        stack = np.stack([g for _, g in members])
        out, errs = images.normalize_stack(stack)
        digits[index] = out
        for i, err in zip(index, errs, strict=True):
            if err is not None:
                errors[i] = str(err)
    ok = np.fromiter((e is None for e in errors), dtype=bool, count=n)
    return digits[ok], errors


Prepared = tuple[NDArray[np.float32], list[str | None]]  # (probabilities of the ok items, reasons)


def prepare_items(
    items: Sequence[tuple[str, str | None]],
    model: ScoringModel,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Prepared:
    """What a worker does for one batch: ``decode_items``, the model's recorded
    preprocessing, the prediction -> (probabilities (k, 10), reasons).

    Predicting here rather than in the parent sends 10 floats per image back instead of
    784 features: the pipe and the pickling were a fifth of the per-image cost."""
    digits, errors = decode_items(items, max_pixels)
    if len(digits) == 0:
        return np.zeros((0, N_CLASSES), dtype=np.float32), errors
    return model.predict_proba(digits), errors


def _init_worker() -> None:
    """Decoding workers: one BLAS / OpenMP thread each, and Ctrl-C is the parent's business."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_bomb_warnings()
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    _limit_blas_threads()


def quiet_bomb_warnings() -> None:
    """Silence Pillow's DecompressionBombWarning in this process: ``max_pixels`` decides,
    and an image over it is an error row, not a warning on stderr."""
    import warnings

    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)


_BLAS_LIMITER: Any = None


def _limit_blas_threads() -> Any:
    """Limit this process's BLAS to one thread for good."""
    global _BLAS_LIMITER
    if _BLAS_LIMITER is None:
        from threadpoolctl import threadpool_limits

        _BLAS_LIMITER = threadpool_limits(limits=1, user_api="blas")
    return _BLAS_LIMITER


@contextlib.contextmanager
def single_thread_blas() -> Iterator[None]:
    """BLAS at one thread inside the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --- scoring --------------------------------------------------------------------------------


@dataclass
class ScoredBatch:
    """Rows for one batch: ``labels[i] == -1`` and ``errors[i]`` set where image i failed."""

    rels: list[str]
    labels: NDArray[np.int64]
    probs: NDArray[np.float32]  # (n, 10); zeros on error rows
    errors: list[str | None]

    def __len__(self) -> int:
        return len(self.rels)


def score_prepared(rels: list[str], prepared: Prepared) -> ScoredBatch:
    """Rows for a prepared batch (``prepare_items``' result), in the items' order."""
    p, errors = prepared
    n = len(rels)
    labels = np.full(n, -1, dtype=np.int64)
    probs = np.zeros((n, N_CLASSES), dtype=np.float32)
    if len(p):
        ok = np.fromiter((e is None for e in errors), dtype=bool, count=n)
        probs[ok] = p
        labels[ok] = np.argmax(p, axis=1)
    return ScoredBatch(rels=rels, labels=labels, probs=probs, errors=errors)


def chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def score_batches(
    items: Iterable[Item],
    model: ScoringModel,
    *,
    workers: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Iterator[ScoredBatch]:
    """Score items in batches of ``batch_size``, in order.

    With ``workers > 1`` the files are decoded in that many worker processes, at most
    ``2 * workers`` batches in flight, while this process does the matrix products with
    its BLAS at one thread. With ``workers == 1`` everything runs here.
    """
    validate_options(workers=workers, batch_size=batch_size, max_pixels=max_pixels)
    chunks = chunked(items, batch_size)
    with single_thread_blas():
        if workers == 1:
            for chunk in chunks:
                pairs = [(it.path, it.problem) for it in chunk]
                prepared = prepare_items(pairs, model, max_pixels)
                yield score_prepared([it.rel for it in chunk], prepared)
            return
        yield from _score_in_pool(chunks, model, workers, max_pixels)


def _start_method() -> str:
    """``fork`` when this process has one thread (workers start in milliseconds with numpy
    and Pillow already loaded, and no other thread can hold a lock across the fork);
    otherwise ``forkserver`` (or ``spawn`` where there is no fork)."""
    import multiprocessing
    import threading

    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _score_in_pool(
    chunks: Iterator[list[Item]], model: ScoringModel, workers: int, max_pixels: int
) -> Iterator[ScoredBatch]:
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    pending: collections.deque[tuple[list[str], Future[Any]]] = collections.deque()
    for stream in (sys.stdout, sys.stderr):  # a forked worker must not re-emit buffered text
        with contextlib.suppress(Exception):
            stream.flush()
    method = _start_method()
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
    )
    try:
        if method == "fork":
            # All workers fork at the first submit. Frozen objects are left alone by the
            # workers' garbage collector, so it does not touch (and copy) the parent's heap.
            gc.freeze()
            try:
                pool.submit(int).result()
            finally:
                gc.unfreeze()
        for chunk in chunks:
            pairs = [(it.path, it.problem) for it in chunk]
            future = pool.submit(prepare_items, pairs, model, max_pixels)
            pending.append(([it.rel for it in chunk], future))
            if len(pending) >= 2 * workers:
                rels, fut = pending.popleft()
                yield score_prepared(rels, fut.result())
        while pending:
            rels, fut = pending.popleft()
            yield score_prepared(rels, fut.result())
    except BrokenProcessPool as e:
        raise SoftmaxPipeError(
            f"a decoding worker process died ({e}); the machine may be out of memory: "
            "retry with fewer --workers"
        ) from None
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


# --- output ---------------------------------------------------------------------------------


def validate_options(
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    max_pixels: int | None = None,
    min_confidence: float | None = None,
    fmt: str | None = None,
) -> None:
    """InvalidInputError (exit 2) naming the first option out of range."""
    checks = [
        ("workers", workers, lambda v: isinstance(v, int) and 1 <= v <= 256, "an integer 1..256"),
        (
            "batch_size",
            batch_size,
            lambda v: isinstance(v, int) and 1 <= v <= 65536,
            "an integer 1..65536",
        ),
        ("max_pixels", max_pixels, lambda v: isinstance(v, int) and v >= 1, "an integer >= 1"),
        ("min_confidence", min_confidence, lambda v: 0.0 <= v <= 1.0, "a number in [0, 1]"),
        ("format", fmt, lambda v: v in FORMATS, f"one of {', '.join(FORMATS)}"),
    ]
    for name, value, ok, expected in checks:
        if value is not None and not ok(value):
            raise InvalidInputError(f"{name}={value!r} is invalid; expected {expected}")


class RowWriter:
    """Formats scored batches as CSV (with a header) or JSON Lines onto a text stream."""

    def __init__(self, stream: TextIO, fmt: str = "csv", *, probs: bool = False) -> None:
        validate_options(fmt=fmt)
        self.stream = stream
        self.fmt = fmt
        self.probs = probs
        self.columns = COLUMNS + (PROB_COLUMNS if probs else ())
        self._csv = csv.writer(stream, lineterminator="\n") if fmt == "csv" else None

    def header(self) -> None:
        if self._csv is not None:
            self._csv.writerow(self.columns)

    def write(self, batch: ScoredBatch) -> None:
        labels = batch.labels.tolist()
        conf = batch.probs.max(axis=1).tolist()
        probs = batch.probs.tolist() if self.probs else None
        if self._csv is not None:
            rows = []
            for i, rel in enumerate(batch.rels):
                err = batch.errors[i]
                if err is None:
                    row = [rel, labels[i], f"{conf[i]:.6f}", "ok", ""]
                    if probs is not None:
                        row.extend(f"{p:.6f}" for p in probs[i])
                else:
                    row = [rel, "", "", "error", err]
                    if probs is not None:
                        row.extend([""] * N_CLASSES)
                rows.append(row)
            self._csv.writerows(rows)
            return
        lines = []
        for i, rel in enumerate(batch.rels):
            err = batch.errors[i]
            head = '{"path": ' + json.dumps(rel, ensure_ascii=False)
            if err is None:
                line = f'{head}, "label": {labels[i]}, "confidence": {conf[i]:.6f}, '
                line += '"status": "ok", "error": ""'
                if probs is not None:
                    line += "".join(f', "p{k}": {p:.6f}' for k, p in enumerate(probs[i]))
            else:
                line = f'{head}, "label": null, "confidence": null, "status": "error", '
                line += '"error": ' + json.dumps(err, ensure_ascii=False)
                if probs is not None:
                    line += _NULL_PROBS
            lines.append(line + "}\n")
        self.stream.write("".join(lines))


_NULL_PROBS = "".join(f', "p{k}": null' for k in range(N_CLASSES))


def check_output_path(output: Path) -> None:
    """Fail before any work when ``--output`` cannot be written where it says."""
    if output.is_dir():
        raise InvalidInputError(f"--output {output} is a folder; expected a file name")
    parent = output.parent
    if not parent.is_dir():
        raise InvalidInputError(
            f"--output {output}: folder {parent} does not exist; create it first"
        )


@contextlib.contextmanager
def open_output(output: Path | None) -> Iterator[TextIO]:
    """stdout, or a temporary file beside ``output`` renamed over it when the block succeeds.

    A crash, an interrupt or an error leaves no file that looks complete: the temporary
    file (``.<name>.<random>.tmp``) is removed and ``output`` is untouched.
    """
    if output is None:
        yield sys.stdout
        sys.stdout.flush()
        return
    check_output_path(output)
    tmp = output.parent / f".{output.name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
    try:
        with open(fd, "w", encoding="utf-8", newline="") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# --- summary --------------------------------------------------------------------------------


@dataclass
class ScoreSummary:
    """What a run did, for stderr (``lines()``) and machines (``as_dict()``)."""

    model: str
    root: str
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    loops: int = 0
    low_confidence: int = 0
    per_class: list[int] = field(default_factory=lambda: [0] * N_CLASSES)
    failure_kinds: collections.Counter[str] = field(default_factory=collections.Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)  # the first few
    skipped_by_ext: collections.Counter[str] = field(default_factory=collections.Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.scored + self.failed

    def add(self, batch: ScoredBatch) -> None:
        ok = batch.labels >= 0
        n_ok = int(ok.sum())
        self.scored += n_ok
        self.failed += len(batch) - n_ok
        if n_ok:
            counts = np.bincount(batch.labels[ok], minlength=N_CLASSES)
            self.per_class = [a + int(c) for a, c in zip(self.per_class, counts, strict=True)]
            conf = batch.probs[ok].max(axis=1)
            self.low_confidence += int((conf < self.min_confidence).sum())
        if n_ok < len(batch):
            for rel, err in zip(batch.rels, batch.errors, strict=True):
                if err is not None:
                    self.failure_kinds[err.split(":", 1)[0]] += 1
                    if len(self.failures) < MAX_LISTED_FAILURES:
                        self.failures.append((rel, err))

    def add_discovery(self, discovery: Discovery) -> None:
        self.skipped += discovery.skipped
        self.loops += discovery.loops
        self.skipped_by_ext.update(discovery.skipped_by_ext)

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "path": self.root,
            "images": self.total,
            "scored": self.scored,
            "failed": self.failed,
            "skipped": self.skipped,
            "symlink_loops": self.loops,
            "per_class": {str(k): c for k, c in enumerate(self.per_class)},
            "min_confidence": self.min_confidence,
            "low_confidence": self.low_confidence,
            "failure_kinds": dict(self.failure_kinds),
            "failures": [{"path": p, "error": e} for p, e in self.failures],
            "skipped_by_extension": dict(self.skipped_by_ext),
            "seconds": round(self.seconds, 3),
        }

    def lines(self) -> list[str]:
        """The human summary, one string per stderr line."""
        rate = f" ({self.total / self.seconds:,.0f} images/s)" if self.seconds > 0 else ""
        out = [
            f"scored {self.scored:,} of {self.total:,} images in {self.seconds:.2f} s{rate} "
            f"with {self.model}",
        ]
        if self.scored:
            out.append(
                "per class: " + "  ".join(f"{k}: {c:,}" for k, c in enumerate(self.per_class))
            )
            out.append(
                f"below {self.min_confidence:.2f} confidence: {self.low_confidence:,} "
                "(likely not digits, or badly scanned)"
            )
        if self.skipped:
            top = sorted(self.skipped_by_ext.items(), key=lambda ec: (-ec[1], ec[0]))[:8]
            kinds = ", ".join(f"{e} {c:,}" for e, c in top)
            out.append(f"skipped {self.skipped:,} files that are not images ({kinds})")
        if self.loops:
            out.append(f"skipped {self.loops:,} symlinked folders already walked (loops)")
        if self.failed:
            kinds = ", ".join(f"{k} {c:,}" for k, c in self.failure_kinds.most_common())
            out.append(f"failed {self.failed:,} images ({kinds}):")
            out.extend(f"  {p}: {e}" for p, e in self.failures)
            if self.failed > len(self.failures):
                out.append(
                    f"  ... and {self.failed - len(self.failures):,} more "
                    "(status=error rows in the output)"
                )
        return out


def no_images_error(root: str | Path, skipped: int) -> DataNotFoundError:
    """Exit 3: PATH holds no image file at all."""
    exts = ", ".join(sorted(e.lstrip(".") for e in images.IMAGE_EXTENSIONS))
    return DataNotFoundError(
        f"no images in {root}: {skipped:,} other files skipped; "
        f"image extensions are {exts} (any case)"
    )


# --- everything, for one PATH ---------------------------------------------------------------


def score_path(
    path: str | Path,
    model: ScoringModel,
    *,
    output: Path | None = None,
    fmt: str = "csv",
    probs: bool = False,
    workers: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    progress: Callable[[int], None] | None = None,
) -> ScoreSummary:
    """Score every image under ``path``; rows to ``output`` (or stdout); return the summary.

    Raises InvalidInputError (exit 2) for a missing path or bad options and
    DataNotFoundError (exit 3) when there is no image at all (nothing is written then).
    Failed images do not raise: they are error rows, counted in ``summary.failed``.
    """
    validate_options(
        workers=workers,
        batch_size=batch_size,
        max_pixels=max_pixels,
        min_confidence=min_confidence,
        fmt=fmt,
    )
    if output is not None:
        check_output_path(output)
    start = time.perf_counter()
    discovery = Discovery(path)
    items = iter(discovery)
    first = next(items, None)
    if first is None:
        raise no_images_error(path, discovery.skipped)
    summary = ScoreSummary(model=model.name, root=str(path), min_confidence=min_confidence)
    with open_output(output) as stream:
        writer = RowWriter(stream, fmt, probs=probs)
        writer.header()
        batches = score_batches(
            itertools.chain([first], items),
            model,
            workers=workers,
            batch_size=batch_size,
            max_pixels=max_pixels,
        )
        for batch in batches:
            writer.write(batch)
            if output is None:
                stream.flush()
            summary.add(batch)
            if progress is not None:
                progress(len(batch))
    summary.add_discovery(discovery)
    summary.seconds = time.perf_counter() - start
    return summary


def count_images(path: str | Path) -> int:
    """How many rows ``score_path`` will write (a walk without decoding; for progress bars)."""
    return sum(1 for _ in Discovery(path))
