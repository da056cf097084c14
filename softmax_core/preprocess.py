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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import InvalidInputError

HOG_CELLS = (2, 4, 7, 14)  # cell sides that tile 28
HOG_NORMS = ("sqrt",)
MAX_BINS = 32
MAX_STEPS = 16
SIDE = 28
_CHUNK = 256  # images per vectorised chunk (hog: a quarter): its temporaries stay in L2


@dataclass(frozen=True)
class Scale:
    """To float32 in [0, 1] (uint8 / 255). Always the first step."""

    name: ClassVar[str] = "scale"

    def to_json(self) -> str:
        return self.name


@dataclass(frozen=True)
class Deskew:
    """Moment deskewing about the centre of mass (:func:`deskew`)."""

    name: ClassVar[str] = "deskew"

    def to_json(self) -> str:
        return self.name


@dataclass(frozen=True)
class Hog:
    """Histograms of oriented gradients (:func:`hog`); the last step when present."""

    cell: int = 4
    bins: int = 8
    signed: bool = True
    norm: str = "sqrt"
    name: ClassVar[str] = "hog"

    def __post_init__(self) -> None:
        if type(self.cell) is not int or self.cell not in HOG_CELLS:
            raise InvalidInputError(f"hog cell {self.cell!r}; expected one of {list(HOG_CELLS)}")
        if type(self.bins) is not int or not 1 <= self.bins <= MAX_BINS:
            raise InvalidInputError(
                f"hog bins {self.bins!r}; expected a whole number 1..{MAX_BINS}"
            )
        if type(self.signed) is not bool:
            raise InvalidInputError(f"hog signed {self.signed!r}; expected true or false")
        if self.norm not in HOG_NORMS:
            raise InvalidInputError(f"hog norm {self.norm!r}; expected one of {list(HOG_NORMS)}")

    @property
    def n_features(self) -> int:
        return (SIDE // self.cell) ** 2 * self.bins

    @property
    def key(self) -> str:
        sign = "signed" if self.signed else "unsigned"
        return f"hog-c{self.cell}-b{self.bins}-{sign}-{self.norm}"

    def describe(self) -> str:
        sign = "signed" if self.signed else "unsigned"
        return f"hog ({self.cell}x{self.cell} cells, {self.bins} {sign} bins, {self.norm})"

    def to_json(self) -> dict[str, Any]:
        return {
            "step": "hog",
            "cell": self.cell,
            "bins": self.bins,
            "signed": self.signed,
            "norm": self.norm,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Hog:
        expected = {"step", "cell", "bins", "signed", "norm"}
        if set(raw) != expected:
            raise InvalidInputError(
                f"hog step {dict(raw)!r}: expected exactly the keys {sorted(expected)}"
            )
        return cls(cell=raw["cell"], bins=raw["bins"], signed=raw["signed"], norm=raw["norm"])


Step = Scale | Deskew | Hog
_NAMED: dict[str, Step] = {"scale": Scale(), "deskew": Deskew(), "hog": Hog()}


@dataclass(frozen=True)
class Steps:
    """The feature steps a model was trained with, in order: parsed once, replayed exactly.

    Always ``Scale`` first; ``Hog`` only last. In a model file they are JSON
    (:meth:`to_json`): ``["scale", "deskew", {"step": "hog", "cell": 4, ...}]``.
    """

    items: tuple[Step, ...]

    def __post_init__(self) -> None:
        names = [s.name for s in self.items]
        if not self.items or not isinstance(self.items[0], Scale):
            raise InvalidInputError(f"preprocessing steps {names!r} must start with 'scale'")
        if len(self.items) > MAX_STEPS:
            raise InvalidInputError(f"{len(self.items)} preprocessing steps, over {MAX_STEPS}")
        if any(isinstance(s, Hog) for s in self.items[:-1]):
            raise InvalidInputError(f"preprocessing steps {names}: 'hog' can only be the last step")
        if any(isinstance(s, Scale) for s in self.items[1:]):
            raise InvalidInputError(
                f"preprocessing steps {names}: 'scale' can only be the first step"
            )

    @classmethod
    def parse(cls, raw: Any) -> Steps:
        """Steps from their JSON: names, or objects naming a step with its parameters
        (``"hog"`` alone means its defaults). Unknown steps or parameters are refused,
        never skipped."""
        if isinstance(raw, str | bytes | Mapping) or not isinstance(raw, list | tuple):
            raise InvalidInputError(f"preprocessing steps must be a list, got {raw!r}")
        if len(raw) > MAX_STEPS:
            raise InvalidInputError(f"{len(raw)} preprocessing steps, over {MAX_STEPS}")
        return cls(tuple(_parse_step(s) for s in raw))

    @classmethod
    def named(cls, features: str) -> Steps:
        """The steps of a ``--features`` name; InvalidInputError naming the known ones."""
        if features not in FEATURE_SETS:
            raise InvalidInputError(
                f"features {features!r} are unknown; expected one of {list(FEATURE_SETS)}"
            )
        return FEATURE_SETS[features]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def to_json(self) -> list[Any]:
        return [s.to_json() for s in self.items]

    @property
    def hog(self) -> Hog | None:
        last = self.items[-1]
        return last if isinstance(last, Hog) else None

    @property
    def n_features(self) -> int:
        """The width ``d`` of the features these steps make."""
        return self.hog.n_features if self.hog is not None else SIDE * SIDE

    @property
    def key(self) -> str:
        """A file-name-safe key naming the steps, e.g. ``scale+deskew+hog-c4-b8-signed-sqrt``."""
        return "+".join(s.key if isinstance(s, Hog) else s.name for s in self.items)

    @property
    def feature_set(self) -> str | None:
        """The ``--features`` name of these steps, or None for a set with other parameters."""
        return next((name for name, known in FEATURE_SETS.items() if known == self), None)

    def describe(self) -> str:
        """One line for people: ``scale → deskew → hog (4x4 cells, 8 signed bins, sqrt)``."""
        return " → ".join(s.describe() if isinstance(s, Hog) else s.name for s in self.items)

    def features(self, images: NDArray[np.generic], *, threads: int = 1) -> NDArray[np.float32]:
        """Apply the steps: (n, 28, 28) images (or (n, 784)) -> (n, d) float32 features.

        Chunk by chunk (bounded memory); with ``threads > 1`` chunks run in that many
        threads (numpy releases the GIL in its loops). Each chunk fills its own rows, so
        the result is the same bits for any thread count.
        """
        images = np.asarray(images)
        if images.ndim == 2 and images.shape[1] == SIDE * SIDE:
            images = images.reshape(-1, SIDE, SIDE)
        if images.ndim != 3 or images.shape[1:] != (SIDE, SIDE):
            raise InvalidInputError(
                f"images must have shape (n, 28, 28) or (n, 784), got {images.shape}"
            )
        if threads < 1:
            raise InvalidInputError(f"threads must be a positive integer, got {threads!r}")
        out = np.empty((images.shape[0], self.n_features), dtype=np.float32)
        chunk = _CHUNK // 4 if self.hog is not None else _CHUNK  # hog: ~30 MB a chunk

        def fill(start: int) -> None:
            x = scale(images[start : start + chunk])
            for s in self.items[1:]:
                x = hog(x, s) if isinstance(s, Hog) else _deskew_chunk(x)  # Scale: first only
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


def _parse_step(raw: Any) -> Step:
    if isinstance(raw, str) and raw in _NAMED:
        return _NAMED[raw]
    if isinstance(raw, Mapping) and raw.get("step") == "hog":
        return Hog.from_json(raw)
    raise InvalidInputError(
        f"unknown preprocessing step {raw!r}; this version knows {list(_NAMED)}"
    )


FEATURE_SETS: dict[str, Steps] = {
    "pixels": Steps((Scale(),)),
    "deskew": Steps((Scale(), Deskew())),
    "hog": Steps((Scale(), Deskew(), Hog())),
}


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


def hog(images: NDArray[np.float32], step: Hog = Hog()) -> NDArray[np.float32]:
    """Histograms of oriented gradients: (n, 28, 28) float32 -> (n, (28/cell)^2 * bins).

    Gradients are central differences (zero outside the image), ``gx`` along columns and
    ``gy`` along rows; the angle ``atan2(gy, gx)`` is taken modulo 2 pi (signed) or pi. A
    pixel's magnitude goes to the two bins whose centres ``(k + 0.5) * span / bins`` are
    nearest, in proportion to closeness; each cell sums its pixels, row-major over cells,
    bins fastest. Vectorised over the chunk.
    """
    cell, bins = step.cell, step.bins
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
    span = 2 * np.pi if step.signed else np.pi
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
    np.sqrt(result, out=result)  # norm "sqrt": the only one, checked by Hog
    return result.reshape(n, -1)
