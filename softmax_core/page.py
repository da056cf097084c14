"""Pages as people have them → the digit's ink: the steps before the MNIST procedure.

A digit written into a form box, a comb field, on ruled or squared paper, or photographed
under a lamp is not an MNIST digit with a white border: cropping to "the ink" keeps the box
or the lit page, and the digit ends up a blob in a rectangle. :func:`clean` works on a stack
of same-shape images (k, h, w), after the polarity and before the crop of
:mod:`softmax_core.normalize`, and changes only what it finds::

    light     where the border is uneven (the 10th to 90th percentile of its ring spans
              more than FLAT_MIN), the polarity is decided by a vote (a shadow across the
              border moves its median), the paper's level under the light is estimated
              (a grey closing, for dark ink, with a window of three of the ink's stroke
              widths, 12 to 30% of the side: strokes and lines vanish, gradients and
              shadows' edges stay where they are), and
              the ink becomes its relative darkness, 1 - page / paper (an opening and a
              difference for bright ink); what is under 3 noise deviations is paper. A
              page where, with the level followed on to the border (where the window
              sees one side only), nothing reaches 6 but in the border's band is blank:
              its ink was the light's slope, not a stroke.
    lines     long straight thin runs are found on the ink mask (pooled to at most
              LINE_SIDE): the page's turn is estimated once (the slope at which rows and
              columns project most sharply), rows are followed at that slope thickened
              to 3 pixels, small gaps closed, and runs of half the side kept. A run is a
              line when it is thin for its length (a frame, a ruling or grid line; not a
              digit's bar: a digit's strokes are thick for their length) and both its
              ends are anchored: at the border (a line the crop cut) or at a
              perpendicular line (a frame's corner). The line pixels no thicker than the
              image's lines are erased with a pixel beside them, except where ink
              continues on both sides (a stroke crossing the line). Where no line was
              found, or the lines found are faint (their median under FAINT_LEVEL of
              the peak: a light grid, broken up where the noise floor cut it), the
              lines are looked for again at FAINT_LINES, and those kept with their edges.
    digit     the ink that is left is split into connected pieces (a one-pixel gap
              still connects); the digit is grown from the piece with the most ink near
              the centre by the pieces near it. A neighbour's edge (touching the border,
              away from the centre), a comb's tick or a frame's stub (touching an erased
              line, as thin as the lines) and specks on a cleaned page never join; what
              does not join is erased. On a cleaned page a piece under FAINT_PIECE of
              the seed's strongest pixel (a line's or a shadow's edge) never joins; a
              stub within the digit's span across a line is a stroke the erasure cut.

Nothing is done to an image that does not need it: a page with an even border is not
flattened, a page without lines loses no pixel, and an image whose ink is one piece away
from the border keeps all of it, so MNIST digits come out of :mod:`softmax_core.normalize`
as before (the same bits, except a few with stray specks far from the digit). Every step
is a few whole-stack numpy operations (runs by accumulated indices, components by
alternating row and column minima), run on the subset of the stack that needs it; a stack
and its images one at a time give the same bits.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]
Mask = NDArray[np.bool_]
I32 = NDArray[np.int32]

INK_THRESHOLD = 0.2  # a pixel is ink for the crop when above this fraction of the ink's max
FLAT_MIN = 0.06  # the border's light varies by more than this: the page is flattened
FLAT_WINDOW = 0.3  # the paper's widest closing window, a fraction of the longer side
FLAT_LEAST = 0.12  # ... and its narrowest
FLAT_STROKES = 3.0  # ... in between, this many of the ink's stroke widths
NOISE_FLOOR = 3.0  # flattened ink under this many noise deviations is paper
POLARITY_Q = 99.3  # percentile of the departures from the halves' medians compared
LINE_THRESHOLD = 0.12  # of the peak: the mask lines are found on (faint lines included)
FAINT_LINES = 0.09  # of the peak: the mask lines are looked for again on where faint
FAINT_LEVEL = 0.5  # lines whose median ink is under this share of the peak are faint
LINE_MIN = 0.5  # a line is a straight run at least this fraction of the side
LINE_SIDE = 128  # lines are found on the mask pooled to at most this side
THIN_RATIO = 0.12  # a line is at most this thick for its length
MAX_TURN = math.tan(math.radians(5.0))  # pages turned by up to 5 degrees
FAINT_PIECE = 0.55  # on a cleaned page, a piece whose strongest pixel is under this share
# of the digit's strongest piece's is what the light or the lines left, not a stroke
LINES_ONLY = 0.3  # the ink's peak falls under this share once lines are erased: blank
# A piece left apart from the digit with this share of its ink or more is a second mark:
# the image is not one digit ("2024", a digit and a word). At 0.2 already, none of MNIST
# test, 1,500 form pages of tests/forms.py (seed 25) or 1,000 user-shaped digits has one.
MARK_SHARE = 0.25
ROW_WIDE = 2.0  # a digit grown wider than this many times its height is a row of marks

# what a page of lines, a blank form field and a page of noise (no stroke stands out of the
# texture once the light is flattened) all come to
BLANK_LINES = (
    "no ink once the lines and the paper's texture are removed: a blank form field, "
    "a page of lines, or noise"
)


# --- runs, shears and running filters ------------------------------------------------------


def runs(m: Mask) -> I32:
    """(k, h, w): the length of the run of True along the rows that each pixel lies in
    (0 where False), from the last False before and the first False after each pixel."""
    n = m.shape[-1]
    pos = np.arange(n, dtype=np.int32)
    before = np.where(m, np.int32(-1), pos)
    np.maximum.accumulate(before, axis=-1, out=before)
    after = np.where(m, np.int32(n), pos)
    after = np.minimum.accumulate(after[..., ::-1], axis=-1)[..., ::-1]
    out: I32 = np.where(m, after - before - 1, 0).astype(np.int32)
    return out


def close_gaps(m: Mask, gap: int) -> Mask:
    """``m`` with runs of False no longer than ``gap`` between two Trues filled (rows)."""
    if gap <= 0:
        return m
    n = m.shape[-1]
    pos = np.arange(n, dtype=np.int32)
    last = np.where(m, pos, np.int32(-(2**30)))
    np.maximum.accumulate(last, axis=-1, out=last)
    nxt = np.where(m, pos, np.int32(2**30))
    nxt = np.minimum.accumulate(nxt[..., ::-1], axis=-1)[..., ::-1]
    out: Mask = m | (nxt - last - 1 <= gap)
    return out


def _t(a: NDArray[Any]) -> NDArray[Any]:
    """(k, h, w) → (k, w, h), contiguous: columns become rows."""
    return np.ascontiguousarray(a.transpose(0, 2, 1))


def _shear(m: NDArray[Any], dy: NDArray[np.intp]) -> NDArray[Any]:
    """out[:, r, x] = m[:, r + dy[x], x] (False/0 outside): rows then follow a slope. The
    columns that share a shift are copied as one slice (a few dozen, not a gather)."""
    if not dy.any():
        return m
    h, w = m.shape[1:]
    out = np.zeros_like(m)
    change = np.flatnonzero(np.diff(dy)) + 1
    for a, b in zip([0, *change.tolist()], [*change.tolist(), w], strict=True):
        d = int(dy[a])
        if d >= 0:
            out[:, : h - d, a:b] = m[:, d:, a:b]
        else:
            out[:, -d:, a:b] = m[:, : h + d, a:b]
    return out


def _dilate_rows(m: Mask) -> Mask:
    """Each pixel or its neighbour above or below."""
    out = m.copy()
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def _pad_edge(a: NDArray[Any], axis: int, before: int, after: int) -> NDArray[Any]:
    """``a`` with its first and last slices along ``axis`` repeated ``before`` and
    ``after`` times (np.pad's "edge" mode, without its overhead)."""
    first = np.take(a, [0] * before, axis=axis)
    last = np.take(a, [a.shape[axis] - 1] * after, axis=axis)
    return np.concatenate([first, a, last], axis=axis)


def _running(a: NDArray[Any], size: int, axis: int, op: Any) -> NDArray[Any]:
    """``op`` (np.maximum or np.minimum) over a centred window of ``size`` along ``axis``,
    the edges repeated: log2(size) + 1 whole-array operations (windows doubled)."""
    r = size // 2
    m = _pad_edge(a, axis, r, size - 1 - r)
    n = a.shape[axis]

    def part(start: int, stop: int) -> tuple[slice[int, int, None], ...]:
        return tuple(slice(start, stop) if i == axis else slice(None) for i in range(a.ndim))

    span = 1
    while 2 * span <= size:
        m = op(m[part(0, m.shape[axis] - span)], m[part(span, m.shape[axis])])
        span *= 2
    out: NDArray[Any] = op(m[part(0, n)], m[part(size - span, size - span + n)])
    return out


def _grow(m: Mask, by: int) -> Mask:
    """Each pixel within ``by`` (chessboard distance) of a True one."""
    size = 2 * by + 1
    return _running(_running(m, size, 1, np.maximum), size, 2, np.maximum)


def _pool(m: Mask, f: int) -> Mask:
    """(k, h, w) → (k, ⌈h/f⌉, ⌈w/f⌉): whether any pixel of each f×f block is set."""
    if f == 1:
        return m
    k, h, w = m.shape
    p = np.pad(m, ((0, 0), (0, -h % f), (0, -w % f)))
    out: Mask = np.asarray(p.reshape(k, p.shape[1] // f, f, p.shape[2] // f, f).any(axis=(2, 4)))
    return out


def _unpool(m: Mask, f: int, h: int, w: int) -> Mask:
    out: Mask = m.repeat(f, axis=1).repeat(f, axis=2)[:, :h, :w]
    return out


def _box3(g: F32) -> F32:
    """The 3×3 mean (edges repeated)."""
    p = _pad_edge(_pad_edge(g, 1, 1, 1), 2, 1, 1)
    rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
    out: F32 = (rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]) * np.float32(1 / 9)
    return out


def _halve(g: F32) -> F32:
    """(k, h, w) → (k, h // 2, w // 2): the mean of each 2×2 block."""
    h, w = g.shape[1:]
    a = g[:, : h - h % 2, : w - w % 2]
    out: F32 = (a[:, ::2, ::2] + a[:, 1::2, ::2] + a[:, ::2, 1::2] + a[:, 1::2, 1::2]) * (
        np.float32(0.25)
    )
    return out


def _median_in(values: NDArray[Any], where: Mask) -> F64:
    """(k,) the (upper) median of ``values`` over each image's ``where`` pixels (0: none)."""
    k = where.shape[0]
    imgs = np.flatnonzero(where.ravel()) // (where.size // max(k, 1))
    vals = values[where]
    out = np.zeros(k)
    if vals.size:
        order = np.lexsort((vals, imgs))
        counts = np.bincount(imgs, minlength=k)
        has = counts > 0
        out[has] = vals[order][(np.cumsum(counts) - counts + counts // 2)[has]]
    return out


# --- connected pieces ---------------------------------------------------------------------


def label(mask: Mask) -> I32:
    """4-connected components of a (k, h, w) stack: each pixel's label is the flat index
    of its component's first pixel (-1 outside the mask). Every run along the rows takes
    its smallest label, then every run along the columns, then labels jump to their
    root's label, until nothing changes: a few rounds for any stroke shape."""
    k, h, w = mask.shape
    on = np.flatnonzero(mask.ravel())
    out = np.full(k * h * w, -1, np.int32)
    if on.size == 0:
        return out.reshape(k, h, w)
    r_new = np.ones(on.size, bool)
    r_new[1:] = (np.diff(on) != 1) | (on[1:] % w == 0)
    r_starts = np.flatnonzero(r_new)
    r_id = np.cumsum(r_new) - 1
    on_c = np.flatnonzero(_t(mask).ravel())  # the same pixels, column by column
    kk, rem = np.divmod(on_c, w * h)
    cc, rr = np.divmod(rem, h)
    c_new = np.ones(on_c.size, bool)
    c_new[1:] = (np.diff(on_c) != 1) | (on_c[1:] % h == 0)
    c_starts = np.flatnonzero(c_new)
    c_id = np.cumsum(c_new) - 1
    pos = np.zeros(k * h * w, np.int64)
    pos[on] = np.arange(on.size)
    c_pos = pos[kk * h * w + rr * w + cc]  # column order → row order
    v = on.astype(np.int64)
    while True:
        old = v
        v = np.minimum.reduceat(v, r_starts)[r_id]
        vc = np.minimum.reduceat(v[c_pos], c_starts)[c_id]
        v = np.empty_like(vc)
        v[c_pos] = vc
        while True:
            nv = v[pos[v]]
            if np.array_equal(nv, v):
                break
            v = nv
        if np.array_equal(v, old):
            break
    out[on] = v
    return out.reshape(k, h, w)


@dataclass(frozen=True)
class _Pieces:
    """The components of a (k, h, w) mask, as per-pixel and per-piece arrays: ``on`` the
    flat index of each set pixel, ``of`` its piece (0..n-1), its row and column; each
    piece's image and bounding box (inclusive)."""

    shape: tuple[int, int, int]
    on: NDArray[np.intp]
    of: NDArray[np.intp]
    ys: NDArray[np.intp]
    xs: NDArray[np.intp]
    img: NDArray[np.intp]
    r0: NDArray[np.intp]
    r1: NDArray[np.intp]
    c0: NDArray[np.intp]
    c1: NDArray[np.intp]

    @property
    def n(self) -> int:
        return int(self.img.size)

    @staticmethod
    def of_mask(mask: Mask, joined: Mask) -> _Pieces:
        """The pieces of ``mask``, connected through ``joined`` (⊇ mask)."""
        k, h, w = mask.shape
        on = np.flatnonzero(mask.ravel())
        roots, of = np.unique(label(joined).ravel()[on], return_inverse=True)
        ys, xs = np.divmod(on % (h * w), w)
        n = roots.size
        r0, c0 = np.full(n, h), np.full(n, w)
        r1, c1 = np.full(n, -1), np.full(n, -1)
        np.minimum.at(r0, of, ys)
        np.maximum.at(r1, of, ys)
        np.minimum.at(c0, of, xs)
        np.maximum.at(c1, of, xs)
        return _Pieces((k, h, w), on, of, ys, xs, roots // (h * w), r0, r1, c0, c1)

    def box(self, which: NDArray[np.bool_]) -> tuple[I32, I32, I32, I32]:
        """The bounding box (top, bottom, left, right: inclusive, (k,) each) of the pieces
        ``which`` (n,) in each image; (h, -1, w, -1) where there are none."""
        k, h, w = self.shape
        top, bottom = np.full(k, h, np.int32), np.full(k, -1, np.int32)
        left, right = np.full(k, w, np.int32), np.full(k, -1, np.int32)
        at = self.img[which]
        np.minimum.at(top, at, self.r0[which])
        np.maximum.at(bottom, at, self.r1[which])
        np.minimum.at(left, at, self.c0[which])
        np.maximum.at(right, at, self.c1[which])
        return top, bottom, left, right

    def pixels(self, which: NDArray[np.bool_]) -> Mask:
        """The mask of the pieces ``which`` (n,)."""
        out = np.zeros(int(np.prod(self.shape)), bool)
        out[self.on[which[self.of]]] = True
        return out.reshape(self.shape)


def _joined(m: Mask) -> Mask:
    """``m`` with each pixel also set right, below and diagonally below-right of a set one:
    pieces a pixel apart (or touching at a corner) are connected through it."""
    out = m.copy()
    out[:, :, 1:] |= m[:, :, :-1]
    out[:, 1:, :] |= m[:, :-1, :]
    out[:, 1:, 1:] |= m[:, :-1, :-1]
    return out


# --- light ----------------------------------------------------------------------------------


def uneven(border: F32) -> Mask:
    """(k,) the border ring (k, n) spans more than ``FLAT_MIN`` between its 10th and 90th
    percentiles: the light, not only the ink, varies across the page."""
    n = border.shape[1]
    lo, hi = (n - 1) // 10, n - 1 - (n - 1) // 10  # the 10th and 90th percentiles, near enough
    part = np.partition(border, (lo, hi), axis=1)
    out: Mask = part[:, hi] - part[:, lo] > FLAT_MIN
    return out


def polarity(g: F32, dark: Mask, uneven: Mask) -> Mask:
    """``dark`` (the ink is dark: the border's median is in the lighter half of the
    range), decided again where the border is uneven (a shadow across it moves its
    median), by the majority of three votes: that rule; the side, darker or brighter, on
    which the page departs most from its halves' medians (2×2 blocks, interpolated: the
    light's slope, not the ink); and which of dark or bright thin things (darker or
    brighter than the page on both sides, a few widths apart) stand out more. On pages
    with shadows each is wrong a few times in a hundred, the vote about twice in a
    thousand (tests/forms.py's pages)."""
    idx = np.flatnonzero(uneven)
    if idx.size == 0:
        return dark
    sub = g[idx]
    while min(sub.shape[1:]) >= 96:  # the votes need the page's shape, not its detail
        sub = _halve(sub)
    k, h, w = sub.shape
    b = math.ceil(max(h, w) / 2)
    gy, gx = math.ceil(h / b), math.ceil(w / b)
    p = _pad_edge(_pad_edge(sub, 1, 0, gy * b - h), 2, 0, gx * b - w)
    blocks = p.reshape(k, gy, b, gx, b).transpose(0, 1, 3, 2, 4).reshape(k, gy, gx, b * b)
    dev = (sub - _bilinear(np.median(blocks, axis=-1), h, w)).reshape(k, -1)
    by_halves = np.percentile(-dev, POLARITY_Q, axis=1) > np.percentile(dev, POLARITY_Q, axis=1)
    valley, ridge = _thin_things(_box3(sub))
    votes = dark[idx].astype(int) + by_halves + (valley > ridge)
    out = dark.copy()
    out[idx] = votes >= 2
    return out


@functools.lru_cache(maxsize=256)
def _weights(n: int, g: int) -> F64:
    """(n, g): how much each of g block centres weighs at each of n pixels (linear)."""
    m = np.zeros((n, g))
    if g == 1:
        m[:, 0] = 1
        return m
    centres = (np.arange(g) + 0.5) * n / g - 0.5
    x = np.minimum(np.maximum(np.arange(n), centres[0]), centres[-1])
    i = np.minimum(np.searchsorted(centres, x, side="right") - 1, g - 2)
    t = (x - centres[i]) / (centres[i + 1] - centres[i])
    m[np.arange(n), i] = 1 - t
    m[np.arange(n), i + 1] = t
    m.flags.writeable = False
    return m


def _bilinear(grid: F64, h: int, w: int) -> F32:
    """(k, gy, gx) values at the centres of a grid of blocks (gy, gx ≤ 2) → (k, h, w),
    linear in between, flat beyond the centres; term by term, so the same in any stack."""

    k, gy, gx = grid.shape
    wy, wx = _weights(h, gy), _weights(w, gx)
    out = np.zeros((k, h, w))
    for y in range(gy):
        for x in range(gx):
            out += grid[:, y, x, None, None] * wy[None, :, y, None] * wx[None, None, :, x]
    return out.astype(np.float32)


def _thin_things(g: F32) -> tuple[F64, F64]:
    """(k,) how far thin dark things sit below the page on both sides (a valley), and thin
    bright things above it (a ridge): the 98th percentiles, over the pixels, of the most
    that 3 distances (2, 4 and 8% of the side) along the rows or the columns give."""
    k, h, w = g.shape
    valley = np.zeros_like(g)
    ridge = np.zeros_like(g)
    for frac in (0.02, 0.04, 0.08):
        d = max(1, round(frac * max(h, w)))
        for axis in (1, 2):
            p = _pad_edge(g, axis, d, d)
            n = p.shape[axis]
            before = p[:, : n - 2 * d] if axis == 1 else p[:, :, : n - 2 * d]
            after = p[:, 2 * d :] if axis == 1 else p[:, :, 2 * d :]
            np.maximum(valley, np.minimum(before, after) - g, out=valley)
            np.maximum(ridge, g - np.maximum(before, after), out=ridge)
    v: F64 = np.percentile(valley.reshape(k, -1), 98, axis=1).astype(np.float64)
    r: F64 = np.percentile(ridge.reshape(k, -1), 98, axis=1).astype(np.float64)
    return v, r


def _closing(g: F32, dark: Mask, size: NDArray[np.intp]) -> F32:
    """(k, h, w) a grey closing of each page (for dark ink; an opening for bright ink) with
    a square window of ``size`` (k,) pixels: the stack done in groups of one window."""
    out = np.empty_like(g)
    for d, first, then in ((True, np.maximum, np.minimum), (False, np.minimum, np.maximum)):
        for s in np.unique(size[dark == d]).tolist():
            sel = (dark == d) & (size == s)
            a = g[sel]
            for op in (first, then):
                a = _running(_running(a, s, 1, op), s, 2, op)
            out[sel] = a
    return out


def stroke_width(ink: F32) -> F64:
    """(k,) how thick the ink's strokes are: over the pixels above ``INK_THRESHOLD`` of
    each image's peak, the median of the shorter of the two runs (along the row, along the
    column) each lies in; 0 where fewer than 4 pixels are ink."""
    m = ink > (INK_THRESHOLD * ink.max(axis=(1, 2)))[:, None, None]
    m &= ink > 0
    across = np.minimum(runs(m), _t(runs(_t(m))))
    out = _median_in(across, m)
    out[m.sum(axis=(1, 2)) < 4] = 0
    return out


@dataclass(frozen=True)
class Paper:
    """:func:`paper_level`'s estimate: the level (k, h, w) and the window of each (k,)."""

    level: F32
    window: NDArray[np.intp]


def paper_level(g: F32, dark: Mask) -> Paper:
    """The paper's level (k, h, w) under the light: a grey closing of the page (for dark
    ink; an opening for bright ink), so strokes and lines vanish while gradients and the
    edges of shadows (monotone across the window) stay where they are. The window is
    ``FLAT_STROKES`` of the ink's stroke widths (:func:`stroke_width`, measured on the
    ink a first closing at ``FLAT_WINDOW`` of the longer side shows), at least
    ``FLAT_LEAST`` and at most ``FLAT_WINDOW`` of the longer side: wider than the
    strokes, and no wider: a wider window fits into a shadow together with the strokes
    beside it, and follows a shadow's edge across a gradient less closely. On
    tests/forms.py's pages (1,200 of the four kinds with lines, drawn together) the
    default model reads 97.4 / 97.5 / 97.5% of seeds 23 / 25 / 26 so, against 96.8 /
    97.1 / 97.0% with ``FLAT_WINDOW`` alone, 94.3-94.8% with a fixed 45% and 97.2-97.4%
    with a fixed 20%; two and a half widths read about as three, three and a half and
    four less, and allowing up to 45% less."""
    k, h, w = g.shape
    n = max(h, w)
    most = max(3, round(FLAT_WINDOW * n))
    first = _closing(g, dark, np.full(k, most, np.intp))
    s = stroke_width(flatten(g, dark, first))
    size = np.rint(np.clip(FLAT_STROKES * s, FLAT_LEAST * n, FLAT_WINDOW * n)).astype(np.intp)
    size = np.where(s > 0, np.maximum(size, 3), most)
    again = size < most
    if not again.any():
        return Paper(first, size)
    out = first.copy()
    out[again] = _closing(g[again], dark[again], size[again])
    return Paper(out, size)


def _edge_band(window: int, n: int, room: int = 2) -> int:
    """How far in from each end of a side of ``n`` pixels a closing of ``window`` sees one
    side only: half the window; 0 on a side under ``room`` half windows."""
    r = window // 2
    return r if room * r < n else 0


def to_border(paper: Paper, dark: Mask) -> F32:
    """The paper's level with its band at each border (:func:`_edge_band`) following the
    light's slope on to the border. There the window sees one side only, so on a page
    darker towards a border a closing stays at the level half a window in, brighter than
    the paper at the border, whose paper then looks like ink: a blank page photographed
    under side light was read as a 1. There the level is taken down (for dark ink; up for
    bright ink) to the line through the levels one and two bands in."""
    out = paper.level.copy()
    for d, op in ((True, np.minimum), (False, np.maximum)):
        for s in np.unique(paper.window[dark == d]).tolist():
            sel = (dark == d) & (paper.window == s)
            out[sel] = _follow_slope(out[sel], s, op)
    return out


def _follow_slope(level: F32, window: int, op: Any) -> F32:
    """:func:`to_border` for a stack of one window and one polarity."""
    for axis in (1, 2):
        n = level.shape[axis]
        r = _edge_band(window, n)
        if r == 0:
            continue
        shape = [1, 1, 1]
        shape[axis] = r
        beyond = np.arange(r, 0, -1, dtype=np.float32).reshape(shape)  # r ... 1 pixels out
        for base, inner, band in (
            (r, 2 * r, slice(0, r)),
            (n - 1 - r, n - 1 - 2 * r, slice(n - r, n)),
        ):
            at = np.take(level, [base], axis=axis)
            slope = (at - np.take(level, [inner], axis=axis)) / np.float32(r)
            line = at + slope * (beyond if band.start == 0 else np.flip(beyond, axis=axis))
            where = tuple(band if i == axis else slice(None) for i in range(3))
            level[where] = op(level[where], line)
    return level


def only_light(g: F32, dark: Mask, paper: Paper) -> Mask:
    """(k,) the pages (k, h, w) whose only ink under ``paper``'s level is the light's: with
    the level followed to the border (:func:`to_border`), nothing reaches twice the noise
    floor but in the bands at the border, where the level is least sure (a shadow's edge, a lamp's falloff
    leaving the page; a short side has none). Those are blank pages. The others are read
    with the level as it is: followed to the border, it reads forms no better (the
    changes at the border move as many form digits one way as the other)."""
    level = to_border(paper, dark)
    lv = np.maximum(level, np.float32(1e-3))
    # twice the floor: where the level sits low, specks of the noise pass the floor once
    strong = flatten(g, dark, level) >= 2 * _floor(g, dark, lv)
    h, w = g.shape[1:]
    # a side under four half windows is all looked at: on a small page the bands would
    # leave too little of it, and a digit there is ink the level may follow (a page of
    # 12 by 33 pixels with a 1 on it was blank)
    band = np.vectorize(lambda window, n: _edge_band(window, n, room=4), otypes=[np.intp])
    rh, rw = band(paper.window, h)[:, None], band(paper.window, w)[:, None]
    rows = (np.arange(h)[None, :] >= rh) & (np.arange(h)[None, :] < h - rh)
    cols = (np.arange(w)[None, :] >= rw) & (np.arange(w)[None, :] < w - rw)
    out: Mask = ~(strong & rows[:, :, None] & cols[:, None, :]).any(axis=(1, 2))
    return out


def _noise(g: F32) -> F32:
    """(k,) the sensor noise's standard deviation, from neighbours' differences along the
    rows (their median: strokes and lines are a minority of the pixels)."""
    med = np.median(np.abs(np.diff(g, axis=2)).reshape(g.shape[0], -1), axis=1)
    out: F32 = (med / np.float32(0.954)).astype(np.float32)
    return out


def flatten(g: F32, dark: Mask, level: F32) -> F32:
    """The ink (k, h, w) of pages under uneven light: their relative darkness under the
    paper's ``level`` (:func:`paper_level`; for bright ink, the brightness over it), what
    is under ``NOISE_FLOOR`` noise deviations set to 0."""
    lv = np.maximum(level, np.float32(1e-3))
    d = dark[:, None, None]
    out: F32 = np.where(d, (lv - g) / lv, g - lv).astype(np.float32)
    out[out < _floor(g, dark, lv)] = 0
    return out


def _floor(g: F32, dark: Mask, level: F32) -> F32:
    """(k, h, w) the flattened ink under which is paper: ``NOISE_FLOOR`` noise deviations
    (relative to the paper's ``level`` for dark ink)."""
    noise = (NOISE_FLOOR * _noise(g))[:, None, None]
    out: F32 = np.where(dark[:, None, None], noise / level, noise).astype(np.float32)
    return out


# --- lines ----------------------------------------------------------------------------------


def skew(m: Mask) -> F64:
    """(k,) the tangent of each page's turn, up to ``MAX_TURN`` in steps of 1 / side: where
    the mask's rows and columns, followed at that slope, project most sharply (the sum of
    squares of their counts). Ruling lines, grids and frames all turn with the page."""
    k, h, w = m.shape
    img, ys, xs = np.nonzero(m)
    n = max(h, w)
    steps = math.ceil(MAX_TURN * n)
    ts = np.arange(-steps, steps + 1) / n
    size = n + 2 * steps + 2
    base = (np.arange(ts.size)[:, None] * k + img[None, :]) * size + steps + 1
    rows = ys[None, :] - (xs[None, :] - (w - 1) / 2) * ts[:, None]
    cols = xs[None, :] + (ys[None, :] - (h - 1) / 2) * ts[:, None]
    score = np.zeros(ts.size * k)
    for at in (rows, cols):
        key = (base + np.rint(at).astype(np.int64)).ravel()
        counts = np.bincount(key, minlength=ts.size * k * size).astype(np.float64)
        score += (counts.reshape(ts.size * k, size) ** 2).sum(axis=1)
    out: F64 = ts[score.reshape(ts.size, k).argmax(axis=0)]
    return out


def long_runs(m: Mask, slope: F64) -> Mask:
    """Pixels of ``m`` (k, h, w) on a straight run along the rows at least ``LINE_MIN`` of
    the width long, the rows followed at ``slope`` (k,) and thickened to 3 pixels (a line
    off that slope by up to 2 / width is still one run from border to border), gaps of
    2% of the width closed."""
    w = m.shape[2]
    found = np.zeros_like(m)
    gap = max(1, round(0.02 * w))
    for t in np.unique(slope).tolist():
        sel = np.flatnonzero(slope == t)
        dy = np.rint((np.arange(w) - (w - 1) / 2) * t).astype(np.intp)
        long = runs(close_gaps(_dilate_rows(_shear(m[sel], dy)), gap)) >= LINE_MIN * w
        found[sel] = _shear(long, -dy)
    out: Mask = found & m
    return out


@dataclass(frozen=True)
class _Runs:
    """The long runs of a mask along its rows, as pieces, with each piece's thickness: over
    its columns the thinnest run across it in each, their 20th percentile (a digit's
    stroke lying along a line for most of the crop does not make the line thick, and a
    digit's bar has no free stretch that is thin)."""

    pieces: _Pieces
    lo: NDArray[np.intp]  # first and last column
    hi: NDArray[np.intp]
    thin: NDArray[np.bool_]  # thickness <= THIN_RATIO × length

    @staticmethod
    def of(long: Mask, across: I32) -> _Runs:
        w = long.shape[2]
        p = _Pieces.of_mask(long, _joined(long))  # a turned line is a staircase
        key = p.of.astype(np.int64) * w + p.xs
        cols, col_of = np.unique(key, return_inverse=True)
        thinnest = np.full(cols.size, np.iinfo(np.int32).max, np.int32)
        np.minimum.at(thinnest, col_of, across.ravel()[p.on])
        piece = cols // w
        order = np.lexsort((thinnest, piece))
        counts = np.bincount(piece, minlength=p.n)
        thickness = thinnest[order][np.cumsum(counts) - counts + counts // 5]
        return _Runs(p, p.c0, p.c1, thickness <= THIN_RATIO * (p.c1 - p.c0 + 1))

    def anchored(self, near: Mask, tol: int) -> NDArray[np.bool_]:
        """Runs whose both ends reach the border (a line the crop cut: at the side, or
        at the top or bottom where the page's turn takes the line out of the crop) or
        ``near`` (a perpendicular line) within their last ``2 tol + 1`` columns, so that
        two parallel lines joined into one piece, or a corner's rounding, still count."""
        p = self.pieces
        h, w = p.shape[1:]
        zone = 2 * tol + 1
        at_line = near[p.img[p.of], p.ys, p.xs] | (p.ys == 0) | (p.ys == h - 1)
        first = at_line & (p.xs - self.lo[p.of] <= zone)
        last = at_line & (self.hi[p.of] - p.xs <= zone)
        a = (self.lo == 0) | (np.bincount(p.of, first, minlength=p.n) > 0)
        b = (self.hi == w - 1) | (np.bincount(p.of, last, minlength=p.n) > 0)
        out: NDArray[np.bool_] = a & b
        return out


def _anchored(
    long_h: Mask, long_v: Mask, across_h: I32, across_v: I32, tol: int
) -> tuple[Mask, Mask]:
    """Of the long runs, the lines: thin for their length, and anchored at both ends at
    the border or at a perpendicular line that is itself a line (decided together, in a
    few rounds that only ever drop runs). A digit's straight stroke ends in its other
    strokes, or free."""
    rh, rv = _Runs.of(long_h, across_h), _Runs.of(_t(long_v), _t(across_v))
    keep_h, keep_v = rh.thin, rv.thin
    dh, dv = rh.pieces.pixels(keep_h), _t(rv.pieces.pixels(keep_v))
    for _ in range(4):
        new_h = keep_h & rh.anchored(_grow(dv, tol), tol)
        new_v = keep_v & rv.anchored(_t(_grow(dh, tol)), tol)
        if np.array_equal(new_h, keep_h) and np.array_equal(new_v, keep_v):
            break
        keep_h, keep_v = new_h, new_v
        dh, dv = rh.pieces.pixels(keep_h), _t(rv.pieces.pixels(keep_v))
    return dh, dv


def _as_thin_as_the_lines(line: Mask, across: I32, most: float) -> Mask:
    """The pixels of ``line`` whose run across it is no thicker than the image's lines
    (the median of its pixels', with room for antialiasing) and than ``most``: where a
    digit's stroke lies along a line, the two together are thicker, and the stroke stays."""
    typical = _median_in(across, line)
    limit = np.minimum(np.maximum(typical * 1.5, typical + 1.5), most)
    out: Mask = line & (across <= limit[:, None, None])
    return out


def may_have_lines(m: Mask) -> Mask:
    """(k,) whether a (k, h, w) line mask can hold a line at all, cheaply. A line is
    anchored at both ends, so either some line reaches the border (the mask touches it),
    or the lines close a frame inside the page: then the mask's outermost rows and
    columns are the frame's sides, and each side's band (as deep as a side turned by
    ``MAX_TURN``) holds ink, gaps of 2% closed, from one corner of the mask's bounding box
    to the other (but for the band's depth at each end), and that ink is thin: the first
    run met, in a fifth of its columns or more, at most ``THIN_RATIO`` of the side deep,
    as :class:`_Runs` measures a line. A digit is round at its extremes, or short there,
    or thick."""
    out: Mask = np.asarray(m[:, 0].any(axis=1) | m[:, -1].any(axis=1))
    out |= m[:, :, 0].any(axis=1) | m[:, :, -1].any(axis=1)
    idx = np.flatnonzero(~out & m.any(axis=(1, 2)))
    for check in (False, True):  # first where the sides' ink spans, then whether thin
        if idx.size == 0:
            break
        sub = m[idx]
        rows: Mask = np.asarray(sub.any(axis=2))
        cols: Mask = np.asarray(sub.any(axis=1))
        ok = _sides(sub, 1, rows, cols, check) & _sides(sub, 2, cols, rows, check)
        out[idx] = ok
        idx = idx[ok]
    return out


def _sides(m: Mask, axis: int, lines: Mask, across: Mask, thin: bool) -> Mask:
    """(k,) :func:`may_have_lines`' test of a (k, h, w) mask with ink, seen along ``axis``
    (1: from above and from below, 2: from the left and from the right); ``lines``
    (k, n): which lines along the axis hold ink, ``across`` (k, span) which across it.
    ``thin``: the thickness, else the span."""
    k, n = lines.shape
    span = across.shape[1]
    band = min(n, math.ceil(span * MAX_TURN) + 2)
    a0 = across.argmax(axis=1)[:, None]
    a1 = span - 1 - across[:, ::-1].argmax(axis=1)[:, None]
    at = np.arange(span)[None, :]
    inner = (at >= a0 + band) & (at <= a1 - band)
    ok: Mask = (a1 - a0 + 1 >= LINE_MIN * span)[:, 0]
    for flip in (False, True):
        v = np.flip(m, axis=axis) if flip else m
        first = (lines[:, ::-1] if flip else lines).argmax(axis=1)[:, None]
        near = v.argmax(axis=axis)  # each column's first ink along the axis
        seen = across & (near < first + band)
        if thin:
            pos = np.arange(n).reshape((1, n, 1) if axis == 1 else (1, 1, n))
            depth = (~v & (pos > np.expand_dims(near, axis))).argmax(axis=axis) - near
            depth = np.where(depth > 0, depth, n - near)  # the run reaches the far border
            by_depth = np.sort(np.where(seen, depth, n), axis=1)
            ok &= by_depth[np.arange(k), seen.sum(axis=1) // 5] <= THIN_RATIO * span
        else:
            closed = close_gaps(seen[:, None, :], max(1, round(0.02 * span)))[:, 0]
            ok &= ~(inner & ~closed).any(axis=1)
    return ok


def find_lines(ink: F32, peak: F64, threshold: float = LINE_THRESHOLD) -> tuple[Mask, Mask]:
    """The ruling lines, grid lines and box frames of a (k, h, w) ink stack, as
    (horizontal, vertical) pixel masks, found on its mask at ``threshold`` of the peak
    pooled to at most ``LINE_SIDE`` (see the module docstring)."""
    h, w = ink.shape[1:]
    m = ink > (threshold * peak)[:, None, None].astype(np.float32)
    f = math.ceil(max(h, w) / LINE_SIDE)
    pm = _pool(m, f)
    ph, pw = pm.shape[1:]
    lh, lv = np.zeros_like(pm), np.zeros_like(pm)
    turn = skew(pm)
    long_h = long_runs(pm, turn)
    long_v = _t(long_runs(_t(pm), -turn))
    across_h, across_v = _t(runs(_t(pm))), runs(pm)
    # at least half of a line's pixels are thin (a cheap filter before the pieces)
    thin_h = (long_h & (across_h <= THIN_RATIO * pw)).sum(axis=(1, 2)) >= LINE_MIN * pw / 2
    thin_v = (long_v & (across_v <= THIN_RATIO * ph)).sum(axis=(1, 2)) >= LINE_MIN * ph / 2
    idx = np.flatnonzero(thin_h | thin_v)
    if idx.size:
        tol = max(1, round(0.02 * max(ph, pw)))
        ah, av = _anchored(long_h[idx], long_v[idx], across_h[idx], across_v[idx], tol)
        most = max(3.0, 0.11 * min(ph, pw))
        sh = _as_thin_as_the_lines(ah, across_h[idx], most)
        sv = _as_thin_as_the_lines(av, across_v[idx], most)
        # where a vertical and a horizontal line cross neither is thin: the gap each
        # leaves in the other is filled
        cross = ah & av
        gap = math.ceil(most) + 2
        lh[idx] = sh | (cross & close_gaps(sh, gap))
        lv[idx] = sv | (cross & _t(close_gaps(_t(sv), gap)))
    if f > 1:
        lh = _unpool(lh, f, h, w) & m
        lv = _unpool(lv, f, h, w) & m
    return lh, lv


def _crossing(band: Mask, ink: F32, thr: F64, most: int) -> Mask:
    """Pixels of ``band`` (k, h, w; a horizontal line's pixels) with ink above and below
    it (along axis 1), the band at most ``most`` tall there: a stroke crossing the line."""
    h = band.shape[1]
    pos = np.arange(h, dtype=np.int32)[None, :, None]
    above = np.where(band, np.int32(-1), pos)
    np.maximum.accumulate(above, axis=1, out=above)
    below = np.where(band, np.int32(h), pos)
    below = np.minimum.accumulate(below[:, ::-1], axis=1)[:, ::-1]
    t = thr[:, None, None].astype(np.float32)
    va = np.take_along_axis(ink, np.maximum(above, 0), axis=1)
    vb = np.take_along_axis(ink, np.minimum(below, h - 1), axis=1)
    out: Mask = band & (above >= 0) & (below < h) & (va > t) & (vb > t)
    out &= below - above - 1 <= most
    return out


def erase_lines(ink: F32, lh: Mask, lv: Mask, peak: F64) -> F32:
    """``ink`` with the line pixels (and a pixel beside them) set to 0, except where a
    stroke crosses a line: ink on both sides of its band (:func:`_crossing`)."""
    h, w = ink.shape[1:]
    rh, rv = _dilate_rows(lh), _t(_dilate_rows(_t(lv)))
    thr = INK_THRESHOLD * peak
    keep_h = _crossing(rh, ink, thr, max(4, h // 10))
    keep_v = _t(_crossing(_t(rv), _t(ink), thr, max(4, w // 10)))
    out: F32 = np.where((rh & ~keep_h) | (rv & ~keep_v), np.float32(0), ink)
    return out


# --- the digit ------------------------------------------------------------------------------


def stray_ink(ink: F32, mask: Mask, band: Mask, line_w: F64, paged: Mask) -> tuple[Mask, F64, I32]:
    """What of the ink (k, h, w) is not the digit (to erase), the digit's area per image
    (0: no digit) and its marks: 1, plus each piece left apart from the digit that holds
    MARK_SHARE of its ink or more (a second digit beside it: not one digit). ``mask``: the
    ink above INK_THRESHOLD; ``band``: the erased lines, ``line_w`` their thickness (0:
    none); ``paged``: the images cleaned of light or lines.

    The pieces of ``mask`` (a pixel's gap still connects) are scored by their ink, less
    the farther from the centre; the best seeds the digit, which then takes the pieces
    near it (a quarter of its size away, half for a piece with 15% of its ink; on a
    cleaned page a speck under 3% only when touching), in a few rounds. Never taken: a
    neighbour's edge (touching the border, its centre of ink in the outer fifth), a tick
    or stub of the lines (touching an erased line, as thin as the lines, 2.5 times as long
    as wide), nor counted as a mark. A digit so grown wider than ROW_WIDE times its height
    is a row of marks (a number, a line of digits: their pieces chain, each near the next):
    each of its pieces, and of those beyond it, holding MARK_SHARE of its largest piece's
    ink is a mark."""
    k, h, w = mask.shape
    area_out = np.zeros(k)
    p = _Pieces.of_mask(mask, _joined(mask))
    marks = np.ones(k, np.int32)
    if p.n == 0:
        return np.zeros_like(mask), area_out, marks
    n, of, img = p.n, p.of, p.img
    vals = ink.ravel()[p.on].astype(np.float64)
    area = np.bincount(of, minlength=n).astype(np.float64)
    mass = np.bincount(of, vals, minlength=n)
    dy = (np.bincount(of, vals * p.ys, minlength=n) / mass - (h - 1) / 2) / h
    dx = (np.bincount(of, vals * p.xs, minlength=n) / mass - (w - 1) / 2) / w
    border = (p.r0 == 0) | (p.c0 == 0) | (p.r1 == h - 1) | (p.c1 == w - 1)
    edge_piece = border & ((np.abs(dy) > 0.3) | (np.abs(dx) > 0.3))
    touches = np.bincount(of, _grow(band, 1).ravel()[p.on], minlength=n) > 0
    bh, bw = p.r1 - p.r0 + 1, p.c1 - p.c0 + 1
    narrow, longer = np.minimum(bh, bw), np.maximum(bh, bw)
    stub = touches & (narrow <= 2 * line_w[img] + 2) & (longer >= 2.5 * narrow)
    apart = edge_piece | stub
    score = mass / (1 + (np.hypot(dy, dx) / 0.3) ** 2) * np.where(apart, 0.05, 1.0)
    order = np.lexsort((score, img))
    last = np.ones(n, bool)
    last[:-1] = img[order][1:] != img[order][:-1]
    member = np.zeros(n, bool)
    member[order[last]] = True
    # on a cleaned page, a piece much fainter than the seed is a line's edge or a
    # shadow's, not a stroke (a pen's strokes are as dark where they break)
    strongest = np.zeros(n)
    np.maximum.at(strongest, of, vals)
    seed_max = np.zeros(k)
    seed_max[img[member]] = strongest[member]
    apart |= paged[img] & (strongest < FAINT_PIECE * seed_max[img])
    for _ in range(4):
        top, bottom, left, right = p.box(member)
        gap = np.maximum.reduce(
            [p.r0 - bottom[img], top[img] - p.r1, p.c0 - right[img], left[img] - p.c1]
        )
        size = np.maximum(bottom - top, right - left)[img] + 1
        held = np.bincount(img[member], mass[member], minlength=k)[img]
        reach = np.maximum(2, np.where(mass >= 0.15 * held, 0.5, 0.25) * size)
        tiny = mass < 0.03 * held  # a speck: only beside the digit (touching, on a page)
        reach = np.where(tiny, np.where(paged[img], 1, np.maximum(2, 0.1 * size)), reach)
        # a stub within the digit's span across the line (its columns for an upright
        # one, its rows for a flat one), a line's width away, is a stroke the line's
        # erasure cut off (a 9's stem under a grid line), not a tick beside the digit
        cut = np.where(
            bh >= bw,
            (p.c0 <= right[img]) & (p.c1 >= left[img]),
            (p.r0 <= bottom[img]) & (p.r1 >= top[img]),
        )
        cut &= stub & ~edge_piece & (gap <= line_w[img] + 3)
        join = ~member & (~apart | cut) & (gap <= reach)
        if not join.any():
            break
        member |= join
    np.add.at(area_out, img[member], area[member])
    held = np.bincount(img[member], mass[member], minlength=k)[img]
    np.add.at(marks, img, ~member & ~apart & (mass >= MARK_SHARE * held))
    # a row of marks (a number, a line of digits) that the growth chained into one digit
    # wider than ROW_WIDE times its height: each piece of the row or beyond it holding
    # MARK_SHARE of the row's largest piece's ink is a mark
    top, bottom, left, right = p.box(member)
    row = (bottom >= 0) & ((right - left + 1) > ROW_WIDE * (bottom - top + 1))
    largest = np.zeros(k)
    np.maximum.at(largest, img[member], mass[member])
    in_row = (member | ~apart) & (mass >= MARK_SHARE * largest[img])
    marks = np.where(row, np.bincount(img[in_row], minlength=k), marks).astype(np.int32)
    stray = p.pixels(~member)
    # with their faint edges, but never a pixel of the digit's pieces
    return _grow(stray, 1) & ~p.pixels(member), area_out, marks


# --- all of it --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cleaned:
    """What :func:`clean` did to a stack: the new peaks (k,), which images are blank
    once their lines are erased (a blank form field, a page of only lines), which had
    lines erased, and how many marks each holds (:func:`stray_ink`; 1: one digit)."""

    peak: F64
    lines_only: Mask
    lined: Mask
    marks: I32


def clean(g: F32, ink: F32, peak: F64, dark: Mask, has_ink: Mask, uneven: Mask) -> Cleaned:
    """The page steps on a stack (see the module docstring), in place on ``ink`` (k, h, w:
    bright, background 0, unclipped, made from the page ``g`` by the caller's polarity
    ``dark`` and background), for the images that need them."""
    k, h, w = g.shape
    peak = peak.copy()
    paged = np.zeros(k, bool)
    lines_only = np.zeros(k, bool)
    band = np.zeros(g.shape, bool)
    line_w = np.zeros(k)
    lined = np.zeros(k, bool)
    idx = np.flatnonzero(has_ink & uneven)
    if idx.size:
        paper = paper_level(_box3(g[idx]), dark[idx])
        level = paper.level
        spread = level.max(axis=(1, 2)) - level.min(axis=(1, 2))
        even = spread <= FLAT_MIN
        sel = idx[~even]
        if sel.size:
            flat = flatten(g[sel], dark[sel], level[~even])
            flat[only_light(g[sel], dark[sel], Paper(level[~even], paper.window[~even]))] = 0
            ink[sel] = flat
            peak[sel] = flat.max(axis=(1, 2))
            paged[sel] = True
    m = ink > (LINE_THRESHOLD * peak)[:, None, None].astype(np.float32)
    faint = ink > (FAINT_LINES * peak)[:, None, None].astype(np.float32)
    strong = has_ink & may_have_lines(m)
    faint_may = has_ink & may_have_lines(faint)
    idx = np.flatnonzero(strong | faint_may)
    if idx.size:
        lh, lv = np.zeros((2, idx.size, h, w), bool)
        first = np.flatnonzero(strong[idx])
        if first.size:
            lh[first], lv[first] = find_lines(ink[idx[first]], peak[idx[first]])
        found: Mask = np.asarray(lh.any(axis=(1, 2)) | lv.any(axis=(1, 2)))
        # a light grid (under uneven light, its faint parts set to 0 with the noise) is
        # broken up at LINE_THRESHOLD: where no line was found, or the lines found are
        # faint, they are looked for again at FAINT_LINES, and kept with their edges
        strength = _median_in(ink[idx], lh | lv) / peak[idx]
        again = np.flatnonzero((~found | (strength < FAINT_LEVEL)) & faint_may[idx])
        if again.size:
            lh2, lv2 = find_lines(ink[idx[again]], peak[idx[again]], FAINT_LINES)
            got = lh2.any(axis=(1, 2)) | lv2.any(axis=(1, 2))
            lh[again[got]], lv[again[got]] = lh2[got], lv2[got]
            found[again[got]] = True
        sel = idx[found]
        if sel.size:
            lh, lv = lh[found], lv[found]
            before = peak[sel]
            ink[sel] = erase_lines(ink[sel], lh, lv, peak[sel])
            band[sel] = lh | lv
            line_w[sel] = np.maximum(_median_in(_t(runs(_t(lh))), lh), _median_in(runs(lv), lv))
            peak[sel] = ink[sel].max(axis=(1, 2))
            lines_only[sel] = peak[sel] < LINES_ONLY * before
            paged[sel] = True
            lined[sel] = True
    mask = ink > (INK_THRESHOLD * peak)[:, None, None].astype(np.float32)
    rows: Mask = np.asarray(mask.any(axis=2))
    cols: Mask = np.asarray(mask.any(axis=1))
    edge = rows[:, 0] | rows[:, -1] | cols[:, 0] | cols[:, -1]
    r_span = h - rows[:, ::-1].argmax(axis=1) - rows.argmax(axis=1)
    c_span = w - cols[:, ::-1].argmax(axis=1) - cols.argmax(axis=1)
    apart = (rows.sum(axis=1) < r_span) | (cols.sum(axis=1) < c_span)  # a gap: 2+ pieces
    idx = np.flatnonzero(has_ink & ~lines_only & (paged | edge | apart))
    marks = np.ones(k, np.int32)
    if idx.size:
        stray, area, marks[idx] = stray_ink(ink[idx], mask[idx], band[idx], line_w[idx], paged[idx])
        lines_only[idx] |= paged[idx] & (area < max(3, 0.001 * h * w))
        hit = stray.any(axis=(1, 2))
        sel = idx[hit]
        if sel.size:
            ink[sel] = np.where(stray[hit], np.float32(0), ink[sel])
            peak[sel] = ink[sel].max(axis=(1, 2))
    return Cleaned(peak, lines_only, lined, marks)
