"""glibc's allocator told to keep the memory of freed arrays for the next batch.

Scoring works batch by batch, and each batch's numpy temporaries are a few MB that are
freed and allocated again. By default glibc gives the top of its heap back to
the system whenever more than 128 KB is free there (its thresholds only adapt after a
freed block was large enough), so every batch paid for its memory again in page faults:
measured, about 4,000 faults and a third of a scoring worker's time per batch of 256
images. :func:`reuse_freed_memory` sets the two thresholds once per process: blocks under
``MMAP_THRESHOLD`` come from the heap, and the heap shrinks only when more than
``TRIM_THRESHOLD`` is free at its top. Larger blocks are still mapped and returned on
free: numpy asks for transparent huge pages for arrays of 4 MB and more, which fault in
2 MB at a time (from the heap they would fault 4 KB at a time), and a decoded photo's
memory goes back at once. Memory stays bounded by the largest batch, not by the run.

Set where batches are decoded: in each scoring worker (``softmax_core.scoring.pool``), or
in the scoring process itself with one worker; not at every CLI start, where nothing
measured paid for it (``benchmarks/ab.py`` with the ``no-mallopt`` patch).

A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import functools
import os

MMAP_THRESHOLD = 4 * 1024 * 1024  # numpy's threshold for madvise(MADV_HUGEPAGE)
TRIM_THRESHOLD = 64 * 1024 * 1024
_M_TRIM_THRESHOLD = -1  # mallopt(3) parameter numbers, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return False


@functools.cache
def reuse_freed_memory() -> bool:
    """Set glibc's heap thresholds for this process (once); True when they were set."""
    if not is_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):
        return False
