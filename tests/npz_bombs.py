"""Hostile ``.npz`` archives for the loaders' tests: small as bytes, huge when read naively,
and a way to measure what reading one allocates."""

from __future__ import annotations

import functools
import io
import tracemalloc
import zipfile
from collections.abc import Callable

import numpy as np


def npy_header(shape: tuple[int, ...], descr: str) -> bytes:
    """A version 1.0 ``.npy`` header declaring ``shape`` of ``descr`` (``"|u1"``, ``"<U64"``)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": descr, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue()


def _zeros_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], descr: str) -> None:
    """A member that holds what its header declares (zeros), deflated as it is written."""
    total = int(np.prod(shape, dtype=np.int64)) * np.dtype(descr).itemsize
    chunk = bytes(1 << 22)
    with zf.open(name, "w", force_zip64=True) as f:
        f.write(npy_header(shape, descr))
        while total > 0:
            f.write(chunk[: min(total, len(chunk))])
            total -= len(chunk)


@functools.cache
def dataset_bomb(images: int = 2_000_000, *, full: bool = False) -> bytes:
    """A deflated dataset blob whose ``images.npy`` is ``(images, 28, 28)`` uint8 of zeros,
    all there (2,000,000 images: 1.5 MB of bytes, 1.5 GB inflated), as is ``labels``; the
    strings ``sha256`` and ``paths`` are headers alone, or with ``full`` zeros too."""
    n = images
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        _zeros_member(zf, "images.npy", (n, 28, 28), "|u1")
        _zeros_member(zf, "labels.npy", (n,), "|u1")
        for name, descr in (("sha256.npy", "<U64"), ("paths.npy", "<U1")):
            if full:
                _zeros_member(zf, name, (n,), descr)
            else:
                zf.writestr(name, npy_header((n,), descr))
    return buf.getvalue()


def peak_bytes(call: Callable[[], object]) -> int:
    """The most memory Python and numpy held at once while ``call`` ran (tracemalloc,
    which sees numpy's array buffers), whatever it raised (the exception propagates)."""
    tracemalloc.start()
    try:
        call()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak
