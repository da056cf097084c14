"""BLAS at one thread: faster for our small products, and the same bits on any machine.

Our matrix products are small (a 128x784 batch by 784x10 weights): OpenBLAS's extra threads
only spin, which on a busy machine made training 6-15x slower, and a different thread count
splits the sums differently, so weights were byte-identical only on the same core count.
Every fit, predict and evaluate runs inside :func:`one_thread` (threadpoolctl).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from typing import Any

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def start_single_threaded() -> None:
    """Before numpy is imported: its BLAS starts with one thread unless the environment
    says otherwise. Every product of ours runs at one thread anyway (:func:`one_thread`);
    a BLAS started with more creates its threads again each time a block restores them,
    and they spin for about 0.1 s of a core each time (measured on a warm `train`: 0.55 s
    of CPU for 0.46 s of wall time, against 0.40 s with one thread)."""
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, "1")


@functools.cache
def _controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries, found once per process (finding
    them walks every loaded library: ~1 ms, once per scoring batch before this cache)."""
    import numpy  # noqa: F401  (its BLAS must be loaded before it is looked for)
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """BLAS limited to one thread inside the block, as it was before it afterwards."""
    with _controller().limit(limits=1, user_api="blas"):
        yield


@functools.cache
def one_thread_for_good() -> Any:
    """BLAS limited to one thread for the rest of this process (worker processes). A
    forked worker reuses its parent's scan of the loaded libraries (:func:`_controller`)."""
    return _controller().limit(limits=1, user_api="blas")
