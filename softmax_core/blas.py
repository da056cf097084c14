"""BLAS at one thread: faster for our small products, and the same bits on any machine.

Our matrix products are small (a 128x784 batch by 784x10 weights): OpenBLAS's extra threads
only spin, which on a busy machine made training 6-15x slower, and a different thread count
splits the sums differently, so weights were byte-identical only on the same core count.
Every fit, predict and evaluate runs inside :func:`one_thread` (threadpoolctl).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any


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


_FOR_GOOD: list[Any] = []


def one_thread_for_good() -> None:
    """BLAS limited to one thread for the rest of this process (worker processes). A
    forked worker reuses its parent's scan of the loaded libraries (:func:`_controller`)."""
    if not _FOR_GOOD:
        _FOR_GOOD.append(_controller().limit(limits=1, user_api="blas"))
