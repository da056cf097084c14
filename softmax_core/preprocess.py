"""Feature preprocessing shared by training and scoring: pure numpy.

Images are ``(n, 28, 28)``: uint8 in 0..255 (MNIST as stored) or floats in [0, 1].
Features are ``(n, 784) float32`` in [0, 1]. The steps a model was trained with are
recorded in its file (``meta["preprocessing"]["steps"]``) and replayed at scoring.

Steps, applied in order:

- ``scale``: to float32 in [0, 1] (uint8 / 255). Always first.
- ``deskew``: shear each image so the covariance of its ink is upright, about its
  centre of mass, which it also moves to the image centre (the classic moment
  deskewing listed in LeCun's MNIST table). Vectorised over the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import InvalidInputError

KNOWN_STEPS = ("scale", "deskew")
DEFAULT_STEPS: tuple[str, ...] = ("scale", "deskew")
RAW_STEPS: tuple[str, ...] = ("scale",)
SIDE = 28
_CHUNK = 4096  # images per vectorised chunk: bounds temporary memory to ~40 MB


def steps_for(deskew: bool) -> tuple[str, ...]:
    """The step list for the ``--deskew/--no-deskew`` switch."""
    return DEFAULT_STEPS if deskew else RAW_STEPS


def validate_steps(steps: Sequence[str]) -> tuple[str, ...]:
    """Check a recorded step list; unknown steps are refused, never skipped."""
    steps = tuple(steps)
    if not steps or steps[0] != "scale":
        raise InvalidInputError(f"preprocessing steps {list(steps)!r} must start with 'scale'")
    for s in steps:
        if s not in KNOWN_STEPS:
            raise InvalidInputError(
                f"unknown preprocessing step {s!r}; this version knows {list(KNOWN_STEPS)}"
            )
    return steps


def scale(images: NDArray[np.generic]) -> NDArray[np.float32]:
    """(n, 28, 28) uint8 or float -> (n, 28, 28) float32 in [0, 1]."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.clip(images.astype(np.float32, copy=False), 0.0, 1.0)


def deskew(images: NDArray[np.float32]) -> NDArray[np.float32]:
    """Moment deskewing, vectorised: (n, 28, 28) float32 in [0, 1] -> same shape.

    For each image with ink I(r, c), centre of mass (mr, mc) and
    alpha = cov(r, c) / var(r), the output is
        out(r, c) = I(r + mr - 14, c + alpha * (r - 14) + mc - 14)
    sampled bilinearly, zero outside. Blank images come back unchanged.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise InvalidInputError(f"deskew expects (n, 28, 28) images, got shape {images.shape}")
    out = np.empty_like(images)
    for start in range(0, images.shape[0], _CHUNK):
        out[start : start + _CHUNK] = _deskew_chunk(images[start : start + _CHUNK])
    return out


def _deskew_chunk(img: NDArray[np.float32]) -> NDArray[np.float32]:
    """Deskew a chunk. The map is separable, so bilinear sampling is two 1-D lerps:
    a vertical shift by (mr - 14), the same for every pixel of an image, then a
    horizontal shift by alpha * (r - 14) + (mc - 14), the same along each row."""
    n = img.shape[0]
    grid = np.arange(SIDE, dtype=np.float32)
    centre = np.float32(SIDE / 2.0)
    mass = img.sum(axis=(1, 2))
    blank = mass <= 0
    safe = np.where(blank, 1.0, mass).astype(np.float32)
    row_mass = img.sum(axis=2)  # (n, 28)
    col_mass = img.sum(axis=1)
    mr = row_mass @ grid / safe
    mc = col_mass @ grid / safe
    dr = grid[None, :] - mr[:, None]  # (n, 28)
    dc = grid[None, :] - mc[:, None]
    var_r = np.einsum("nr,nr->n", row_mass, dr * dr) / safe
    cov_rc = np.einsum("nr,nr->n", np.einsum("nrc,nc->nr", img, dc), dr) / safe
    ok = ~blank & (var_r > 1e-6)
    alpha = np.where(ok, cov_rc / np.where(ok, var_r, 1.0), 0.0).astype(np.float32)
    shift_r = np.where(blank, 0.0, mr - centre).astype(np.float32)  # (n,)
    shift_c = np.where(blank, 0.0, mc - centre).astype(np.float32)

    pad = SIDE + 1  # a shift beyond the image reads only zeros from the padding
    # Vertical: v = lerp(img[k : k + 28], img[k + 1 : k + 29], f), k = floor(shift_r),
    # gathered as whole 28x28 windows of the zero-padded image.
    padded = np.zeros((n, SIDE + 2 * pad, SIDE), dtype=np.float32)
    padded[:, pad : pad + SIDE] = img
    sr = np.clip(shift_r, -pad, pad - 1)
    k = np.floor(sr)
    f = (sr - k)[:, None, None]
    start = (pad + k).astype(np.intp)
    windows = _windows(padded)  # (n, positions, 28, 28)
    images = np.arange(n)
    v = windows[images, start] * (1 - f)
    v += windows[images, start + 1] * f
    # Horizontal: each row r of each image moves by alpha * (r - 14) + shift_c.
    padded = np.zeros((n * SIDE, 1, SIDE + 2 * pad), dtype=np.float32)
    padded[:, 0, pad : pad + SIDE] = v.reshape(n * SIDE, SIDE)
    sc = np.clip(alpha[:, None] * (grid[None, :] - centre) + shift_c[:, None], -pad, pad - 1)
    kc = np.floor(sc).reshape(-1)
    fc = (sc.reshape(-1) - kc)[:, None]
    start = (pad + kc).astype(np.intp)
    windows = _windows(padded.transpose(0, 2, 1)).reshape(
        n * SIDE, -1, SIDE
    )  # (rows, positions, 28)
    rows = np.arange(n * SIDE)
    out = windows[rows, start] * (1 - fc)
    out += windows[rows, start + 1] * fc
    out = out.reshape(n, SIDE, SIDE)
    return out.astype(np.float32, copy=False)


def _windows(a: NDArray[np.float32]) -> NDArray[np.float32]:
    """Read-only view (n, L - 27, 28, W) of a (n, L, W) array: [i, s] is a[i, s : s + 28]."""
    n, length, width = a.shape
    s0, s1, s2 = a.strides
    return np.lib.stride_tricks.as_strided(
        a, (n, length - SIDE + 1, SIDE, width), (s0, s1, s1, s2), writeable=False
    )


def features(images: NDArray[np.generic], steps: Sequence[str]) -> NDArray[np.float32]:
    """Apply the recorded steps: (n, 28, 28) images -> (n, 784) float32 features."""
    steps = validate_steps(steps)
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == SIDE * SIDE:
        images = images.reshape(-1, SIDE, SIDE)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise InvalidInputError(
            f"images must have shape (n, 28, 28) or (n, 784), got {images.shape}"
        )
    out = np.empty((images.shape[0], SIDE * SIDE), dtype=np.float32)
    for start in range(0, images.shape[0], _CHUNK):
        x = scale(images[start : start + _CHUNK])
        for s in steps[1:]:
            if s == "deskew":
                x = _deskew_chunk(x)
        out[start : start + _CHUNK] = x.reshape(x.shape[0], -1)
    return out
