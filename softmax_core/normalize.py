"""The MNIST procedure on one grayscale image or a stack of them: polarity, the page steps
(:mod:`softmax_core.page`: light flattened, lines removed, the digit's ink kept), stretch,
crop, fit into 20×20, centre by centre of mass in 28×28 (see :mod:`softmax_core.images`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from softmax_core import page
from softmax_core.errors import ImageError
from softmax_core.page import INK_THRESHOLD

SIDE = 28
BOX = 20  # MNIST fits the ink into a 20×20 box ...
CENTRE = 14.0  # ... and puts its centre of mass here (row, column), in 28×28
# Larger pages are reduced (each pixel the mean of the ones it covers) to this longer side
# first: a digit needs a few dozen pixels, lines are found at 128 anyway, and it bounds the
# time and memory one photo takes.
WORK_SIDE = 128
# Pages with lines under this longer side are done again enlarged to ``WORK_SIDE``: on a
# 32-pixel crop of squared paper a grid line and a digit's stroke are one or two pixels
# each, and where they lie together the line's erasure takes the stroke with it
# (benchmarks/pages.py --seed 24: squared paper 94.8% → 96.5%).
ENLARGE_BELOW = WORK_SIDE // 2
_BORDER_CACHE: dict[tuple[int, int], NDArray[np.intp]] = {}

FloatImage = NDArray[np.float32]


def as_float(gray: NDArray[Any]) -> FloatImage:
    """uint8 pixels → float32 in [0, 1] (x / 255); float images unchanged."""
    if gray.dtype == np.uint8:
        return gray * np.float32(1 / 255)
    return np.asarray(gray, dtype=np.float32)


def _border_index(h: int, w: int) -> NDArray[np.intp]:
    """Flat indices of the outer ring of an h×w image (cached per shape)."""
    key = (h, w)
    idx = _BORDER_CACHE.get(key)
    if idx is None:
        ring = np.zeros((h, w), dtype=bool)
        ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
        idx = np.flatnonzero(ring)
        if len(_BORDER_CACHE) < 64:
            _BORDER_CACHE[key] = idx
    return idx


def normalize(
    gray: NDArray[np.floating[Any] | np.uint8], *, resize_always: bool = False
) -> FloatImage:
    """(h, w) grayscale (uint8, or floats in [0, 1]), either polarity → (28, 28) float32
    MNIST-style digit.

    ``resize_always`` sends the fit step through Pillow even when the ink box already has
    a 20-pixel longer side (a no-op there); tests use it to show the shortcut is exact.
    Raises :class:`ImageError` (``blank``) when the image has no ink.
    """
    g = np.asarray(gray)
    if g.ndim != 2 or g.size == 0:
        raise ImageError("corrupt", f"expected a 2-D image, got shape {g.shape}")
    out, errors = normalize_stack(g[None], resize_always=resize_always)
    if errors[0] is not None:
        raise errors[0]
    result: FloatImage = out[0]
    return result


def _pillow(g: FloatImage, size: tuple[int, int], how: Image.Resampling) -> FloatImage:
    """One (h, w) float32 image resized to ``size`` (width, height) by Pillow's ``how``,
    read in place (no second copy)."""
    h, w = g.shape
    img = Image.frombuffer("F", (w, h), np.ascontiguousarray(g), "raw", "F", 0, 1)
    return np.asarray(img.resize(size, how), dtype=np.float32)


def reduce(gray: NDArray[Any]) -> FloatImage:
    """(h, w) grayscale → float32 with the longer side ``WORK_SIDE`` (Pillow's box filter:
    each pixel the mean of the ones it covers)."""
    g = as_float(gray)
    h, w = g.shape
    f = WORK_SIDE / max(h, w)
    return _pillow(g, (max(1, round(w * f)), max(1, round(h * f))), Image.Resampling.BOX)


def enlarge(g: FloatImage) -> FloatImage:
    """(k, h, w) float32 → (k, f h, f w), the smallest whole ``f`` that makes the longer
    side at least ``WORK_SIDE`` (Pillow's bilinear filter, image by image)."""
    h, w = g.shape[1:]
    f = math.ceil(WORK_SIDE / max(h, w))
    return np.stack([_pillow(one, (w * f, h * f), Image.Resampling.BILINEAR) for one in g])


@dataclass(frozen=True)
class _Inked:
    """A stack's ink (k, h, w: bright, in [0, 1], zero outside its box), which images have
    ink, which are blank once their lines are removed, their ranges and ink boxes."""

    ink: FloatImage
    has_ink: NDArray[np.bool_]
    lines_only: NDArray[np.bool_]
    lined: NDArray[np.bool_]
    marks: NDArray[np.int32]
    lo: NDArray[np.float64]
    hi: NDArray[np.float64]
    r0: NDArray[np.intp]
    r1: NDArray[np.intp]
    c0: NDArray[np.intp]
    c1: NDArray[np.intp]


def _ink_boxes(g: FloatImage) -> _Inked:
    """Polarity, the page steps, stretch and crop for a (k, h, w) stack."""
    k, h, w = g.shape
    flat = g.reshape(k, h * w)
    lo = flat.min(axis=1).astype(np.float64)
    hi = flat.max(axis=1).astype(np.float64)
    border = flat[:, _border_index(h, w)]
    mid = border.shape[1] // 2
    background = np.partition(border, mid, axis=1)[:, mid]  # the border's (upper) median
    bg64 = background.astype(np.float64)
    dark = bg64 > 0.5 * (lo + hi)  # a light background: the ink is dark
    uneven = page.uneven(border)
    # The paper is most of any page. Where the border's median and the whole page's
    # disagree on the polarity (a crop on a box's frame: the ring is the frame), the
    # page's median is the first vote, and the paper is the lighter (or darker) of two.
    # (Whether the page's median is over the midpoint is a count, not a sort.)
    mid_level = (0.5 * (lo + hi)).astype(np.float32)[:, None]
    disagree = dark != (np.count_nonzero(flat > mid_level, axis=1) > (h * w) // 2)
    if disagree.any():
        dark = page.polarity(g, np.where(disagree, ~dark, dark), uneven | disagree)
        sel = np.flatnonzero(disagree)
        whole = np.median(flat[sel], axis=1).astype(np.float64)
        paper = np.where(dark[sel], np.maximum(bg64[sel], whole), np.minimum(bg64[sel], whole))
        bg64[sel] = paper
        background = bg64.astype(np.float32)
        uneven |= disagree
    else:
        dark = page.polarity(g, dark, uneven)
    peak = np.where(dark, bg64 - lo, hi - bg64)
    has_ink = (hi - lo > 1e-6) & (peak > 1e-6)
    ink = g - background[:, None, None]
    if dark.any():
        np.negative(ink, out=ink, where=dark[:, None, None])
    cleaned = page.clean(g, ink, peak, dark, has_ink, uneven)
    peak = cleaned.peak
    lines_only = cleaned.lines_only
    has_ink &= ~lines_only
    mask: NDArray[np.bool_] = ink > (INK_THRESHOLD * peak).astype(np.float32)[:, None, None]
    rows: NDArray[np.bool_] = np.asarray(mask.any(axis=2))
    cols: NDArray[np.bool_] = np.asarray(mask.any(axis=1))
    r0 = rows.argmax(axis=1)
    r1 = h - rows[:, ::-1].argmax(axis=1)
    c0 = cols.argmax(axis=1)
    c1 = w - cols[:, ::-1].argmax(axis=1)
    inside = (_ramp(h)[None, :] >= r0[:, None]) & (_ramp(h)[None, :] < r1[:, None])
    inside_c = (_ramp(w)[None, :] >= c0[:, None]) & (_ramp(w)[None, :] < c1[:, None])
    # Stretch: background → 0, peak → 1; everything outside the ink box → 0.
    scale = (1.0 / np.where(has_ink, peak, 1.0)).astype(np.float32)
    np.maximum(ink, np.float32(0.0), out=ink)
    ink *= scale[:, None, None]
    ink *= inside[:, :, None]
    ink *= inside_c[:, None, :]
    marks = np.where(has_ink, cleaned.marks, 0).astype(np.int32)
    return _Inked(ink, has_ink, lines_only, cleaned.lined, marks, lo, hi, r0, r1, c0, c1)


def normalize_stack(
    grays: NDArray[np.floating[Any] | np.uint8], *, resize_always: bool = False
) -> tuple[FloatImage, list[ImageError | None]]:
    """:func:`prepare_stack`'s digits and errors: what training's images need."""
    done = prepare_stack(grays, resize_always=resize_always)
    return done.digits, done.errors


@dataclass(frozen=True)
class PreparedStack:
    """:func:`prepare_stack`'s result: the digits (k, 28, 28), an :class:`ImageError` or
    None for each, and the marks each image holds (1: one digit; more: a piece as heavy
    as a digit's lies apart from it, a second digit or a word, so the image is not one
    digit: :func:`softmax_core.page.stray_ink`; 0: no ink). Its digit is made all the
    same, from the mark the page steps kept."""

    digits: FloatImage
    errors: list[ImageError | None]
    marks: NDArray[np.int32]


def prepare_stack(
    grays: NDArray[np.floating[Any] | np.uint8], *, resize_always: bool = False
) -> PreparedStack:
    """:func:`normalize` on k images of one shape at once: (k, h, w) → (k, 28, 28); uint8
    stacks are scaled by 1/255 first, exactly as :func:`to_gray` does, and images with a
    side over ``WORK_SIDE`` are reduced to it (:func:`reduce`). Pages under
    ``ENLARGE_BELOW`` whose lines the page steps erased are done again enlarged to it
    (:func:`enlarge`), and come back as their enlargement does.

    The statistics (range, background, polarity, ink box) and the page steps
    (:func:`softmax_core.page.clean`) are computed for the whole stack in a few numpy
    calls, which is what makes scoring folders of small images fast.
    The arithmetic is the same as one image at a time: the centres of mass are summed in
    float64, where sums of float32 pixels are exact whatever the order, so a stack and
    its images one by one give identical results. Images with no ink come back as zeros
    with an :class:`ImageError` at their index; the others with None.
    """
    g = as_float(np.asarray(grays))
    if max(g.shape[1:]) > WORK_SIDE:
        g = np.stack([reduce(one) for one in g])
    k, h, w = g.shape
    inked = _ink_boxes(g)
    ink, has_ink, lo, hi = inked.ink, inked.has_ink, inked.lo, inked.hi
    # small pages whose lines were erased are done again enlarged (see ENLARGE_BELOW)
    again = inked.lined if max(h, w) < ENLARGE_BELOW else np.zeros(k, bool)
    r0, r1, c0, c1 = inked.r0, inked.r1, inked.c0, inked.c1
    # Fit: the longer side of the box to 20 pixels. Boxes already that size need no resize
    # (MNIST's own digits): their centres of mass are computed for the stack at once.
    ch, cw = r1 - r0, c1 - c0
    longer = np.maximum(ch, cw)
    fits = (longer == BOX) & has_ink & ~again & (not resize_always)
    out = np.zeros((k, SIDE, SIDE), dtype=np.float32)
    errors: list[ImageError | None] = [None] * k
    if fits.any():
        f = np.flatnonzero(fits)
        sub = ink if len(f) == k else ink[f]
        sub64 = sub.astype(np.float64)  # sums exact: see the docstring
        row_mass = sub64.sum(axis=2)
        col_mass = sub64.sum(axis=1)
        mass = row_mass.sum(axis=1)
        cy = ((_ramp(h)[None, :] - r0[f, None]) * row_mass).sum(axis=1) / mass
        cx = ((_ramp(w)[None, :] - c0[f, None]) * col_mass).sum(axis=1) / mass
        # The box's top-left goes to floor(14 - c + 0.5): shift the whole frame by that.
        dy = np.floor(CENTRE - cy + 0.5).astype(np.intp) - r0[f]
        dx = np.floor(CENTRE - cx + 0.5).astype(np.intp) - c0[f]
        out[f] = _shift(sub, dy, dx)
    for i in np.flatnonzero(~fits & ~again).tolist():
        if not has_ink[i]:
            if inked.lines_only[i]:
                reason = page.BLANK_LINES
            elif hi[i] - lo[i] <= 1e-6:
                reason = f"no ink: the whole image is one flat value ({lo[i]:.3f})"
            else:
                reason = "no ink: nothing differs from the background"
            errors[i] = ImageError("blank", reason)
            continue
        crop = ink[i, r0[i] : r1[i], c0[i] : c1[i]]
        n = int(longer[i])
        th = max(1, round(int(ch[i]) * BOX / n))
        tw = max(1, round(int(cw[i]) * BOX / n))
        if (th, tw) != crop.shape or resize_always:
            crop = _resize(crop, tw, th)
        out[i] = _centre(crop)
    marks = inked.marks.copy()
    if again.any():
        redo = np.flatnonzero(again)
        big = prepare_stack(enlarge(g[redo]), resize_always=resize_always)
        out[redo], marks[redo] = big.digits, big.marks
        for i, e in zip(redo.tolist(), big.errors, strict=True):
            errors[i] = e
    return PreparedStack(out, errors, marks)


def _ramp(n: int) -> NDArray[np.float64]:
    """0, 1, ..., n-1 as float64 (pixel coordinates)."""
    if n <= _RAMP.size:
        return _RAMP[:n]
    return np.arange(n, dtype=np.float64)


_RAMP = np.arange(4096, dtype=np.float64)


def _resize(a: FloatImage, width: int, height: int) -> FloatImage:
    """Antialiased resize of a float image (Pillow 'F' mode); clipped back to [0, 1]."""
    src = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    out = np.asarray(src.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def _centre(crop: FloatImage) -> FloatImage:
    """Paste into 28×28 with the centre of mass at (14, 14), rounded to whole pixels."""
    h, w = crop.shape
    row_mass = crop.sum(axis=1, dtype=np.float64)
    mass = float(row_mass.sum())
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    if not mass > 0:
        return out
    cy = float(row_mass @ _ramp(h)) / mass
    cx = float(crop.sum(axis=0, dtype=np.float64) @ _ramp(w)) / mass
    _paste(out, crop, math.floor(CENTRE - cy + 0.5), math.floor(CENTRE - cx + 0.5))
    return out


def _shift(frames: FloatImage, dy: NDArray[np.intp], dx: NDArray[np.intp]) -> FloatImage:
    """(m, h, w) frames -> (m, 28, 28) with out[i, r, c] = frames[i, r - dy[i], c - dx[i]]
    (zero outside): the stack's version of :func:`_paste`, one gather for all images."""
    from numpy.lib.stride_tricks import sliding_window_view

    m, h, w = frames.shape
    if m <= 4:  # a few frames: plain slicing is cheaper than building the windows
        out = np.zeros((m, SIDE, SIDE), dtype=np.float32)
        for i, (sy, sx) in enumerate(zip(dy.tolist(), dx.tolist(), strict=True)):
            _paste(out[i], frames[i], sy, sx)
        return out
    # Just enough zero padding that every image's 28×28 window lies inside it (a frame
    # of MNIST digits moves by a pixel or two: a few KB an image, not a 92×92 canvas).
    pad = max(
        0, int(dy.max()), int((SIDE - h - dy).max()), int(dx.max()), int((SIDE - w - dx).max())
    )
    padded = np.zeros((m, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    padded[:, pad : pad + h, pad : pad + w] = frames
    windows = sliding_window_view(padded, (SIDE, SIDE), axis=(1, 2))
    return windows[np.arange(m), pad - dy, pad - dx]


def _paste(out: FloatImage, crop: FloatImage, top: int, left: int) -> None:
    """out[top:top+h, left:left+w] = crop, clipped to out's bounds."""
    h, w = crop.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, SIDE), min(left + w, SIDE)
    if t1 > t0 and l1 > l0:
        out[t0:t1, l0:l1] = crop[t0 - top : t1 - top, l0 - left : l1 - left]
