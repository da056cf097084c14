"""Feature preprocessing shared by training and scoring: pure numpy.

Images are ``(n, 28, 28)``: uint8 in 0..255 (MNIST as stored) or floats in [0, 1].
Features are ``(n, d) float32``: ``d = 784`` pixels, or the ``hog`` histograms. The steps
a model was trained with are recorded in its file (``meta["preprocessing"]["steps"]``)
and replayed at scoring. A step is a name, or (with parameters) an object naming it:
``["scale", "deskew", {"step": "hog", "cell": 4, "bins": 8, "signed": true,
"norm": "sqrt"}]``.

Steps, applied in order:

- ``scale``: to float32 in [0, 1] (uint8 / 255). Always first.
- ``deskew``: shear each image so the covariance of its ink is upright, about its
  centre of mass, which it also moves to the image centre (the classic moment
  deskewing listed in LeCun's MNIST table). Vectorised over the batch.
- ``hog`` (last; parameters recorded): histograms of oriented gradients. Central
  differences give each pixel a gradient; its magnitude is split between the two nearest
  of ``bins`` orientations (signed: over 2 pi) and summed over ``cell`` x ``cell`` cells:
  ``(28 / cell)^2 * bins`` features (392 by default), then square-rooted (``norm:
  "sqrt"``, the Hellinger map: a linear model on them acts like a kernel on histograms).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import InvalidInputError

Step = str | Mapping[str, Any]
Steps = tuple[Step, ...]

KNOWN_STEPS = ("scale", "deskew", "hog")
HOG: Mapping[str, Any] = {"step": "hog", "cell": 4, "bins": 8, "signed": True, "norm": "sqrt"}
HOG_CELLS = (2, 4, 7, 14)  # cell sides that tile 28
HOG_NORMS = ("sqrt",)
MAX_BINS = 32
FEATURE_SETS: dict[str, Steps] = {
    "pixels": ("scale",),
    "deskew": ("scale", "deskew"),
    "hog": ("scale", "deskew", HOG),
}
SIDE = 28
_CHUNK = 256  # images per vectorised chunk (hog: a quarter): its temporaries stay in L2


def step_name(step: Step) -> str:
    return str(step.get("step")) if isinstance(step, Mapping) else str(step)


def validate_steps(steps: Sequence[Step]) -> Steps:
    """Check a recorded step list; unknown steps or parameters are refused, never skipped.

    Returns it canonical: plain names as strings, ``hog`` as a dict with every parameter.
    """
    if isinstance(steps, str | bytes | Mapping) or not isinstance(steps, Sequence):
        raise InvalidInputError(f"preprocessing steps must be a list, got {steps!r}")
    out = tuple(_step(s) for s in steps)
    if not out or out[0] != "scale":
        raise InvalidInputError(f"preprocessing steps {list(steps)!r} must start with 'scale'")
    names = [step_name(s) for s in out]
    if "hog" in names[:-1]:
        raise InvalidInputError(f"preprocessing steps {names}: 'hog' can only be the last step")
    return out


def _step(step: Any) -> Step:
    if isinstance(step, str) and step in ("scale", "deskew"):
        return step
    if isinstance(step, str) and step == "hog":
        return dict(HOG)
    if not isinstance(step, Mapping) or step.get("step") != "hog":
        raise InvalidInputError(
            f"unknown preprocessing step {step!r}; this version knows {list(KNOWN_STEPS)}"
        )
    if set(step) != set(HOG):
        raise InvalidInputError(f"hog step {dict(step)!r}: expected exactly the keys {sorted(HOG)}")
    cell, bins, signed, norm = step["cell"], step["bins"], step["signed"], step["norm"]
    if type(cell) is not int or cell not in HOG_CELLS:
        raise InvalidInputError(f"hog cell {cell!r}; expected one of {list(HOG_CELLS)}")
    if type(bins) is not int or not 1 <= bins <= MAX_BINS:
        raise InvalidInputError(f"hog bins {bins!r}; expected a whole number 1..{MAX_BINS}")
    if type(signed) is not bool:
        raise InvalidInputError(f"hog signed {signed!r}; expected true or false")
    if norm not in HOG_NORMS:
        raise InvalidInputError(f"hog norm {norm!r}; expected one of {list(HOG_NORMS)}")
    return {"step": "hog", "cell": cell, "bins": bins, "signed": signed, "norm": norm}


def n_features(steps: Sequence[Step]) -> int:
    """The width ``d`` of the features these steps make."""
    last = validate_steps(steps)[-1]
    if isinstance(last, Mapping):
        return int((SIDE // last["cell"]) ** 2 * last["bins"])
    return SIDE * SIDE


def steps_key(steps: Sequence[Step]) -> str:
    """A file-name-safe key naming the steps, e.g. ``scale+deskew+hog-c4-b8-signed-sqrt``."""
    parts = []
    for s in validate_steps(steps):
        if isinstance(s, Mapping):
            sign = "signed" if s["signed"] else "unsigned"
            parts.append(f"hog-c{s['cell']}-b{s['bins']}-{sign}-{s['norm']}")
        else:
            parts.append(s)
    return "+".join(parts)


def describe(steps: Sequence[Step]) -> str:
    """One line for people: ``scale → deskew → hog (4x4 cells, 8 signed bins, sqrt)``."""
    parts = []
    for s in validate_steps(steps):
        if isinstance(s, Mapping):
            sign = "signed" if s["signed"] else "unsigned"
            parts.append(
                f"hog ({s['cell']}x{s['cell']} cells, {s['bins']} {sign} bins, {s['norm']})"
            )
        else:
            parts.append(s)
    return " → ".join(parts)


def feature_steps(features: str) -> Steps:
    """The steps of a ``--features`` name; InvalidInputError naming the known ones."""
    if features not in FEATURE_SETS:
        raise InvalidInputError(
            f"features {features!r} are unknown; expected one of {list(FEATURE_SETS)}"
        )
    return validate_steps(FEATURE_SETS[features])


def feature_set_of(steps: Sequence[Step]) -> str | None:
    """The ``--features`` name of these steps, or None for a set with other parameters."""
    canonical = validate_steps(steps)
    for name, known in FEATURE_SETS.items():
        if validate_steps(known) == canonical:
            return name
    return None


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
    mr = np.einsum("nr,r->n", row_mass, grid) / safe  # not BLAS: the same bits for any n
    mc = np.einsum("nc,c->n", col_mass, grid) / safe
    dr = grid[None, :] - mr[:, None]  # (n, 28)
    dc = grid[None, :] - mc[:, None]
    var_r = np.einsum("nr,nr->n", row_mass, dr * dr) / safe
    cov_rc = np.einsum("nr,nr->n", np.einsum("nrc,nc->nr", img, dc), dr) / safe
    ok = ~blank & (var_r > 1e-6)
    alpha = np.where(ok, cov_rc / np.where(ok, var_r, 1.0), 0.0).astype(np.float32)
    shift_r = np.where(blank, 0.0, mr - centre).astype(np.float32)  # (n,)
    shift_c = np.where(blank, 0.0, mc - centre).astype(np.float32)

    # Vertical: v = lerp(img[k : k + 28], img[k + 1 : k + 29], f), k = floor(shift_r),
    # gathered as whole 28x28 windows of the zero-padded image. A shift beyond the image
    # reads only zeros: SIDE + 1 rows of padding always suffice, fewer when the chunk's
    # shifts are smaller (the same values are read either way).
    pad = _pad_for(shift_r)
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
    sc = alpha[:, None] * (grid[None, :] - centre) + shift_c[:, None]
    pad = _pad_for(sc)
    padded = np.zeros((n * SIDE, 1, SIDE + 2 * pad), dtype=np.float32)
    padded[:, 0, pad : pad + SIDE] = v.reshape(n * SIDE, SIDE)
    sc = np.clip(sc, -pad, pad - 1)
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


def _pad_for(shifts: NDArray[np.float32]) -> int:
    """Zero padding that lets every shift in ``shifts`` read a whole window: the largest
    shift's whole part and a neighbour, capped where a window sees only padding."""
    largest = float(np.abs(shifts).max(initial=0.0))
    return SIDE + 1 if not largest < SIDE else min(SIDE + 1, math.ceil(largest) + 2)


def _windows(a: NDArray[np.float32]) -> NDArray[np.float32]:
    """Read-only view (n, L - 27, 28, W) of a (n, L, W) array: [i, s] is a[i, s : s + 28]."""
    n, length, width = a.shape
    s0, s1, s2 = a.strides
    return np.lib.stride_tricks.as_strided(
        a, (n, length - SIDE + 1, SIDE, width), (s0, s1, s1, s2), writeable=False
    )


def hog(images: NDArray[np.float32], step: Mapping[str, Any] = HOG) -> NDArray[np.float32]:
    """Histograms of oriented gradients: (n, 28, 28) float32 -> (n, (28/cell)^2 * bins).

    Gradients are central differences (zero outside the image), ``gx`` along columns and
    ``gy`` along rows; the angle ``atan2(gy, gx)`` is taken modulo 2 pi (signed) or pi. A
    pixel's magnitude goes to the two bins whose centres ``(k + 0.5) * span / bins`` are
    nearest, in proportion to closeness; each cell sums its pixels, row-major over cells,
    bins fastest. Vectorised over the chunk.
    """
    checked = _step(step)
    if not isinstance(checked, Mapping):
        raise InvalidInputError(f"hog expects a hog step, got {step!r}")
    step = checked
    cell, bins = int(step["cell"]), int(step["bins"])
    images = np.asarray(images, dtype=np.float32)
    n = images.shape[0]
    # Central differences, zero outside: the edge columns and rows see one neighbour.
    gx = np.empty_like(images)
    np.subtract(images[:, :, 2:], images[:, :, :-2], out=gx[:, :, 1:-1])
    gx[:, :, 0], gx[:, :, -1] = images[:, :, 1], -images[:, :, -2]
    gy = np.empty_like(images)
    np.subtract(images[:, 2:], images[:, :-2], out=gy[:, 1:-1])
    gy[:, 0], gy[:, -1] = images[:, 1], -images[:, -2]
    magnitude = gx * gx
    magnitude += gy * gy
    np.sqrt(magnitude, out=magnitude)
    span = 2 * np.pi if step["signed"] else np.pi
    # The fractional bin position, straight from atan2's [-pi, pi]: bins repeat every span,
    # so the integer part is wrapped afterwards, on the small histogram, not per pixel.
    position = np.arctan2(gy, gx, out=gx)
    position *= np.float32(bins / span)
    position -= np.float32(0.5)
    floor = np.floor(position, out=gy)
    upper = np.subtract(position, floor, out=position)  # the share of the bin above
    upper *= magnitude
    lower = np.subtract(magnitude, upper, out=magnitude)
    # Unwrapped bins: floor lies in [first, last]; slot `offset + floor` of an extended
    # row of `width` bins per cell takes the share below, the next slot the share above.
    first = math.floor(-bins * np.pi / span - 0.5) - 1  # one bin of margin for rounding
    last = math.floor(bins * np.pi / span - 0.5) + 1
    offset, width = -first, last - first + 2
    cells = SIDE // cell
    # Each pixel's slot: image-major, then its cell (row-major), `width` slots a cell.
    of_cell = (np.arange(SIDE) // cell)[:, None] * cells + (np.arange(SIDE) // cell)[None, :]
    index = floor.astype(np.intp)
    index += of_cell * width + offset
    index += (np.arange(n) * (cells * cells * width))[:, None, None]
    size = n * cells * cells * width
    ext = np.bincount(index.ravel(), weights=lower.ravel(), minlength=size)
    above = np.bincount(index.ravel(), weights=upper.ravel(), minlength=size)
    ext[1:] += above[:-1]  # the slot above; a cell's last slot never spills (margin)
    ext = ext.reshape(n, cells, cells, width)
    out = np.zeros((n, cells, cells, bins), dtype=np.float64)
    for j in range(width):  # fold the extended row back onto the bins, circularly
        out[..., (j - offset) % bins] += ext[..., j]
    result = out.astype(np.float32)
    np.sqrt(result, out=result)  # norm "sqrt": the only one, checked in _step
    return result.reshape(n, -1)


def features(
    images: NDArray[np.generic], steps: Sequence[Step], *, threads: int = 1
) -> NDArray[np.float32]:
    """Apply the recorded steps: (n, 28, 28) images -> (n, d) float32 features.

    Chunk by chunk (bounded memory); with ``threads > 1`` chunks run in that many threads
    (numpy releases the GIL in its loops). Each chunk fills its own rows, so the result is
    the same bits for any thread count.
    """
    steps = validate_steps(steps)
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == SIDE * SIDE:
        images = images.reshape(-1, SIDE, SIDE)
    if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
        raise InvalidInputError(
            f"images must have shape (n, 28, 28) or (n, 784), got {images.shape}"
        )
    if threads < 1:
        raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
    out = np.empty((images.shape[0], n_features(steps)), dtype=np.float32)
    chunk = _CHUNK // 4 if isinstance(steps[-1], Mapping) else _CHUNK  # hog: ~30 MB a chunk

    def fill(start: int) -> None:
        x = scale(images[start : start + chunk])
        for s in steps[1:]:
            if s == "deskew":
                x = _deskew_chunk(x)
            elif isinstance(s, Mapping):
                x = hog(x, s)
        out[start : start + chunk] = x.reshape(x.shape[0], -1)

    starts = range(0, images.shape[0], chunk)
    if threads == 1 or len(starts) < 2:
        for start in starts:
            fill(start)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(fill, starts))  # waits for all; re-raises a chunk's error
    return out
