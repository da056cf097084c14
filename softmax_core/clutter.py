"""Digits as pages leave them: training digits with a page's leftovers.

A model with the class "not a digit" learns from generated non-digits
(``softmax_core.negatives``) that blobs, stray strokes, letters and specks mean junk. The
page steps (``softmax_core.page``) remove ruling lines, grids and box frames, but a
frame's side or corner, a comb's tick, a neighbour's edge, a grey patch of uneven light or
a printed glyph can stay beside a real digit in the prepared 28×28 image, and such a digit
then looks like junk to the model: it is rejected (1.3–4.3% of form digits, measured on
``tests/forms.py`` pages, without this). So the model is also shown digits with those
leftovers, labelled as the digits they are: :func:`cluttered` takes training digits
(a share of them printed with the DejaVu faces instead, prepared as scoring prepares
images) and adds one or two of: ``frame`` (straight sides of a box around the ink, whole
or in part), ``tick`` (a comb's short upright strokes at the bottom corners),
``neighbour`` (the edge of another digit at the left or right border), ``patch`` (a faint
grey block at a border: uneven light), ``specks`` and ``cut`` (a thin band across the
digit faded: a line's erasure that took the strokes with it).

The digits' columns learn from them too (``settings.CLUTTERED_DIGITS_SHARE``): of the
34 form digits the 10-class model misread in ``benchmarks/pages.py`` (seed 23, 1,200
form pages), 11 were well prepared, 5 had strokes cut by a line's erasure and 18 kept a
leftover (a frame, tick, neighbour or line: 8; grey light or shadow: 10), which on a page
is part of the crop: the digit comes out smaller and off-centre. So ``REFRAMED`` of the
digits get their leftovers on a wider canvas (a margin of ``MARGINS`` pixels) and are
prepared again, page steps and all, as the page would be. With both, forms (the 4 kinds,
seeds 23, 25, 26) are read 97.7/97.7/97.4% by the 10-class model (97.2/96.8/96.3% before)
and 96.8/96.9/96.3% by the default (96.1/95.6/95.0%), MNIST test 98.92% (98.93%); 10 of
the 34 misreads above are read right, 4 others wrong, grey light the most left (9 of 10).
A textured shadow leftover read them better still but taught the column "not a digit"
that photos are digits (unseen non-digits rejected 76% -> 64%): not drawn.

Drawn where the model sees them rather than on whole pages: the page steps cost tens of
milliseconds a lined page, and training draws thousands. Made from the training split only
(never the test digits the benchmarks draw forms from); deterministic for a given
generator.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

SIDE = 28
PAGE = 56  # printed digits are drawn on a page this size, then prepared
PRINTED = 0.15  # share of printed digits
# Share of digits whose leftovers are drawn on a wider canvas (a margin of MARGINS pixels
# each side) and prepared again: the leftover then widens the ink box, so the digit comes
# out smaller and off-centre, as it does from a page (where a kept tick or shadow is part
# of the crop); the page steps take away what they would take from a page.
REFRAMED = 0.8
MARGINS = (2, 10)
CHUNK = 512  # canvases of one size prepared together (a stack: the same result, faster)
FONTS = Path("/usr/share/fonts/truetype/dejavu")
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
LEFTOVERS = ("frame", "tick", "neighbour", "patch", "specks", "cut")


@cache
def _font(face: str, size: int) -> Any:
    from PIL import ImageFont

    path = FONTS / face
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _printed_page(label: int, rng: np.random.Generator) -> NDArray[np.uint8]:
    """A printed digit, dark on a light page."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (PAGE, PAGE), int(rng.integers(200, 256)))
    font = _font(FACES[int(rng.integers(len(FACES)))], int(rng.integers(28, 46)))
    ink = int(rng.integers(0, 80))
    ImageDraw.Draw(img).text((PAGE / 2, PAGE / 2), str(label), fill=ink, font=font, anchor="mm")
    return np.asarray(img, dtype=np.uint8)


def _ink_box(d: NDArray[np.float32]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) of the ink, inclusive."""
    side = d.shape[0]
    rows, cols = np.flatnonzero(d.max(axis=1) > 0.1), np.flatnonzero(d.max(axis=0) > 0.1)
    if not len(rows):
        return 4, 4, side - 5, side - 5
    return int(rows[0]), int(cols[0]), int(rows[-1]), int(cols[-1])


def _add(d: NDArray[np.float32], kind: str, other: NDArray[np.float32], rng: Any) -> None:
    """One leftover of ``kind`` maxed into the prepared digit ``d`` (in place; square, 28
    pixels a side or a wider canvas around them)."""
    side = d.shape[0]
    top, left, bottom, right = _ink_box(d)
    level = float(rng.uniform(0.4, 1.0))
    width = int(rng.integers(1, 3))
    if kind == "frame":
        pad = int(rng.integers(1, 4))
        t, l_ = max(top - pad, 0), max(left - pad, 0)
        b, r = min(bottom + pad, side - width), min(right + pad, side - width)
        for edge in rng.choice(4, size=int(rng.integers(1, 4)), replace=False).tolist():
            lo, hi = sorted(rng.uniform(0, 1, 2))
            if edge in (0, 2):  # top or bottom: a run along the row
                row = t if edge == 0 else b
                a, z = l_ + int(lo * (r - l_)), l_ + max(int(hi * (r - l_)), 1)
                np.maximum(d[row : row + width, a:z], level, out=d[row : row + width, a:z])
            else:
                col = l_ if edge == 3 else r
                a, z = t + int(lo * (b - t)), t + max(int(hi * (b - t)), 1)
                np.maximum(d[a:z, col : col + width], level, out=d[a:z, col : col + width])
    elif kind == "tick":
        base = min(bottom + int(rng.integers(0, 3)), side - 1)
        tall = int(rng.integers(3, 9))
        for col in (
            max(left - int(rng.integers(1, 4)), 0),
            min(right + int(rng.integers(1, 4)), side - 1),
        ):
            np.maximum(d[base - tall : base + 1, col], level, out=d[base - tall : base + 1, col])
    elif kind == "neighbour":
        shift = int(rng.uniform(0.54, 0.8) * side) * (1 if rng.random() < 0.5 else -1)
        m = (side - SIDE) // 2
        placed = np.zeros_like(d)
        placed[m : m + SIDE, m : m + SIDE] = other
        moved = np.zeros_like(d)
        if shift > 0:
            moved[:, shift:] = placed[:, : side - shift]
        else:
            moved[:, :shift] = placed[:, -shift:]
        np.maximum(d, moved * level, out=d)
    elif kind == "patch":
        h, w = (int(v) * side // SIDE for v in rng.integers(4, 13, 2))
        at_top, at_left = rng.random(2) < 0.5
        rows = slice(0, h) if at_top else slice(side - h, side)
        cols = slice(0, w) if at_left else slice(side - w, side)
        np.maximum(d[rows, cols], float(rng.uniform(0.1, 0.45)), out=d[rows, cols])
    elif kind == "cut":  # a line's erasure took a band of the strokes with it
        width = int(rng.integers(1, 3))
        fade = np.float32(rng.uniform(0.0, 0.3))
        if rng.random() < 0.7:
            at = int(rng.integers(top + 2, max(bottom - 1, top + 3)))
            d[at : at + width, :] *= fade
        else:
            at = int(rng.integers(left + 2, max(right - 1, left + 3)))
            d[:, at : at + width] *= fade
    else:  # specks
        k = int(rng.integers(2, 9))
        ys, xs = rng.integers(0, side, k), rng.integers(0, side, k)
        d[ys, xs] = np.maximum(d[ys, xs], rng.uniform(0.3, 1.0, k).astype(np.float32))


def _prepare_again(
    digits: NDArray[np.float32], group: list[tuple[int, NDArray[np.float32]]]
) -> None:
    """Canvases of one size (index into ``digits``, canvas) prepared as scoring prepares an
    image, into ``digits`` (a canvas the preparation finds blank keeps its digit)."""
    from softmax_core.normalize import normalize_stack

    made, errors = normalize_stack(np.clip(np.stack([d for _, d in group]), 0.0, 1.0))
    for (i, _), digit, error in zip(group, made, errors, strict=True):
        if error is None:
            digits[i] = digit


def cluttered(
    images: NDArray[Any], labels: NDArray[Any], n: int, rng: np.random.Generator
) -> tuple[NDArray[np.uint8], NDArray[np.uint8]]:
    """``n`` digits drawn from ``images (m, 28, 28)`` (prepared: bright on dark, uint8)
    with their ``labels``, each with one or two leftovers of a page (see the module doc):
    ``(n, 28, 28) uint8`` and their labels ``(n,) uint8``."""
    from softmax_core.normalize import as_float, normalize_stack

    if n <= 0:
        return np.zeros((0, SIDE, SIDE), np.uint8), np.zeros(0, np.uint8)
    pick = rng.integers(0, len(labels), size=n)
    others = rng.integers(0, len(labels), size=n)
    ys = np.asarray(labels)[pick].astype(np.uint8)
    digits = as_float(np.asarray(images)[pick])  # a new array: fancy indexing copies
    printed = np.flatnonzero(rng.random(n) < PRINTED)
    if len(printed):
        pages: NDArray[Any] = np.stack([_printed_page(int(ys[i]), rng) for i in printed.tolist()])
        made, errors = normalize_stack(pages)
        for i, digit, error in zip(printed.tolist(), made, errors, strict=True):
            if error is None:
                digits[i] = digit
    margins = np.where(rng.random(n) < REFRAMED, rng.integers(MARGINS[0], MARGINS[1] + 1, n), 0)
    waiting: dict[int, list[tuple[int, NDArray[np.float32]]]] = {}
    for i in range(n):
        other = as_float(np.asarray(images[int(others[i])]))
        m = int(margins[i])
        d = np.pad(digits[i], m) if m else digits[i]
        k = min(int(rng.integers(1, 3)), len(LEFTOVERS))
        for kind in rng.choice(LEFTOVERS, size=k, replace=False).tolist():
            _add(d, str(kind), other, rng)
        if m:
            waiting.setdefault(m, []).append((i, d))
            if len(waiting[m]) == CHUNK:
                _prepare_again(digits, waiting.pop(m))
    for group in waiting.values():
        _prepare_again(digits, group)
    return np.rint(np.clip(digits, 0.0, 1.0) * 255).astype(np.uint8), ys
