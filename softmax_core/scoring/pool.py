"""The process pool: batches decoded and predicted in workers, in order, memory flat."""

from __future__ import annotations

import collections
import contextlib
import gc
import itertools
import os
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from softmax_core import settings
from softmax_core.blas import BLAS_THREAD_VARS, one_thread, one_thread_for_good
from softmax_core.errors import PipelineError
from softmax_core.model import Model
from softmax_core.scoring.decode import (
    Prepared,
    Reader,
    ScoredBatch,
    prepare_items,
    score_prepared,
)
from softmax_core.scoring.discover import Item

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

DEFAULT_BATCH_SIZE = settings.SCORE_BATCH_SIZE
DEFAULT_MAX_PIXELS = settings.MAX_PIXELS
_THREAD_VARS = ("OMP_NUM_THREADS", *BLAS_THREAD_VARS)


_PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies


def _die_with_parent(parent: int) -> None:
    """SIGTERM this worker when the scoring process dies, even by SIGKILL (Linux prctl);
    and exit at once if it is already gone (the race between fork and prctl)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if parent and os.getppid() != parent:
        os._exit(1)


def _init_worker(parent: int, environ: dict[str, str] | None) -> None:
    """Decoding workers: the parent's environment as it is now (a forkserver keeps the one
    it started with, so a worker would miss credentials set since: S3 inputs), one BLAS /
    OpenMP thread each, Ctrl-C is the parent's business, and they end with their parent."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # started while the parent held them (:func:`_interrupts_held`): a mask is inherited
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD)
    quiet_pillow_warnings()
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    one_thread_for_good()


_HELD = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and SIGTERM (the CLI's KeyboardInterrupt)


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait while the pool takes a batch: its first ``submit`` starts
    the workers, then its manager thread, and an interrupt between the thread's creation
    and its start left a pool whose ``shutdown`` raises RuntimeError ("cannot join thread
    before it is started"), which replaced the interrupt (exit 70, not 130) and left the
    workers waiting. Held, it arrives once ``submit`` returns, and the pool shuts down
    as after any other. Held in this thread: whole in a process of one thread (``score``
    without ``--flow``, whose workers fork); with other threads (a flow run's) the kernel
    may hand the signal to one of them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def default_workers() -> int:
    """One decoding process per CPU this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def quiet_pillow_warnings() -> None:
    """Silence Pillow's warnings about one image in this process: they name no file, and
    the row says what matters. DecompressionBombWarning: ``max_pixels`` decides, and an
    image over it is an error row. Its UserWarnings (``Corrupt EXIF data``, ``Metadata
    Warning, tag 274 had too many entries``): the pixels are read all the same, and the
    orientation a malformed EXIF block cannot give is left as it is (``images.py``)."""
    import warnings

    from PIL import Image

    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


def chunked(items: Iterable[Item], size: int) -> Iterator[list[Item]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def score_batches(
    items: Iterable[Item],
    model: Model,
    *,
    workers: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reader: Reader | None = None,
) -> Iterator[ScoredBatch]:
    """Score items in batches of ``batch_size``, in order (``reader``: what opens them, when
    they are not local files; it goes with each batch to the worker).

    With ``workers > 1`` each batch is prepared (decoded, the MNIST procedure, the model's
    features and prediction: :func:`prepare_items`) in one of that many worker processes,
    at most ``2 * workers`` batches in flight, each with its BLAS at one thread; this
    process walks the folder and turns results into rows. With ``workers == 1``
    everything runs here, BLAS at one thread too.
    """
    chunks = chunked(items, batch_size)
    with one_thread():
        if workers == 1:
            for chunk in chunks:
                pairs = [(it.path, it.problem) for it in chunk]
                prepared = prepare_items(pairs, model, max_pixels, reader)
                yield _rows(chunk, prepared)
            return
        yield from _score_in_pool(chunks, model, workers, max_pixels, reader)


def _rows(chunk: list[Item], prepared: Prepared) -> ScoredBatch:
    return score_prepared([it.rel for it in chunk], prepared, [it.path for it in chunk])


def _preload_decoders() -> None:
    """Import what a worker's first image would: Pillow's common format plugins."""
    from PIL import Image

    Image.preinit()


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


def new_pool(workers: int, method: str) -> ProcessPoolExecutor:
    """Decoding workers started by ``method`` (see :func:`_start_method`)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context(method),
        initializer=_init_worker,
        initargs=(os.getpid(), None) if method == "fork" else (0, dict(os.environ)),
    )


def _score_in_pool(
    chunks: Iterator[list[Item]],
    model: Model,
    workers: int,
    max_pixels: int,
    reader: Reader | None,
) -> Iterator[ScoredBatch]:
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    pending: collections.deque[tuple[list[Item], Future[Any]]] = collections.deque()
    for stream in (sys.stdout, sys.stderr):  # a forked worker must not re-emit buffered text
        with contextlib.suppress(Exception):
            stream.flush()
    method = _start_method()
    pool = new_pool(workers, method)
    try:
        if method == "fork":
            # All workers fork at the first submit. Pillow's format plugins are imported
            # here first, once, rather than in every worker on its first image. Frozen
            # objects are left alone by the workers' garbage collector, so it does not
            # touch (and copy) the parent's heap.
            _preload_decoders()
            gc.freeze()
            try:
                with _interrupts_held():
                    started = pool.submit(int)
                started.result()
            finally:
                gc.unfreeze()
        for chunk in chunks:
            pairs = [(it.path, it.problem) for it in chunk]
            with _interrupts_held():
                future = pool.submit(prepare_items, pairs, model, max_pixels, reader)
            pending.append((chunk, future))
            if len(pending) >= 2 * workers:
                done, fut = pending.popleft()
                yield _rows(done, fut.result())
        while pending:
            done, fut = pending.popleft()
            yield _rows(done, fut.result())
    except BrokenProcessPool as e:
        raise PipelineError(
            f"a decoding worker process died ({e}); the machine may be out of memory: "
            "retry with fewer --workers"
        ) from None
    finally:
        for _, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


# --- output ---------------------------------------------------------------------------------
