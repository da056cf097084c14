"""Not a digit: a seeded generator of the negatives a model learns to reject (issue 24).

:func:`pages` draws grey pages the way a user's folder holds them: dark ink on light
paper, the longer side one of SIDES (28 to 64 pixels, about log-uniform), the other one of
SHORTS (55% to 100%) of it, at least 28; :func:`negatives` puts the same pages through the
preparation scoring gives every image (:func:`softmax_core.normalize.normalize_stack`:
polarity, the page steps of :mod:`softmax_core.page`, crop, fit, centre), CHUNK pages at a
time, the pages of one shape as one stack, and returns what the model sees:
``(n, 28, 28) uint8``, ink bright on dark, as MNIST is stored.

Why small pages of a few dozen shapes: the preparation crops to the ink and fits it into
20×20 whatever the page's size, so a larger page mostly costs time (drawn at 2x, then
reduced to 128 pixels by the preparation); and pages of one shape are prepared as one
stack, where each page of its own size is a call of its own. About 1 ms a prepared page
(2.4 ms with pages of 28 to 200 pixels, each of its own size), and the default model
rejects as many unseen non-digits (``benchmarks/unknown.py``: 53% against 52%).

The kinds, each its share of the pages (an exact quota: ``n * share`` by largest
remainders, in a shuffled order)::

    blobs         15%  1-3 filled blobs (a wobbly closed outline: harmonics on a circle),
                       some with splatter droplets; no holes, so never a 0
    scribbles     20%  random pen strokes: meandering walks (2-4 strokes, each about
                       twice the box long), cursive loop chains, zigzags, spirals
    letters       20%  1-3 characters of LETTERS in a DejaVu face (FACES), turned up to
                       20 degrees, sometimes emboldened; never DIGIT_LIKE (listed there:
                       O o Q D I l i j J | S s Z z B g q b G ? $ & < > ^ # + = and more)
    side_by_side  15%  two or three digit-like shapes written side by side (a "2024"),
                       drawn here as pen strokes from skeletons of 0 2 3 5 6 8 9 (not 1,
                       4 or 7: a vertical bar or corner beside a digit is what a form's
                       frame leaves, and must stay a digit), slanted, touching or close
    outlines      10%  outlines of triangles, hearts, arrows, crosses, lightning bolts,
                       crescents and irregular polygons, turned and wobbly (no circles or
                       ellipses: a 0; no rectangles: a box's frame)
    texture       10%  blotches (smooth noise thresholded), stipple (dots), diagonal
                       hatching and cross-hatching (20-70 degrees off the axes: never
                       ruled or squared paper), salt grain; over the page or a patch
    specks        10%  a near-blank page: paper with 1-6 specks of dust

What is never drawn: digits, a small mark inside a frame, or straight lines along the page's
axes alone (a form's box, comb, ruling or grid: :mod:`softmax_core.page` erases those, and a
digit whose frame is partly left must not look like a negative).

Every page: paper grey 0.78-1.0, ink at least 0.45 darker, drawn at 2x and reduced (Pillow's
box filter: antialiased edges), sensor noise (sigma 0.2-3%), rounded to uint8; a quarter of
the pages of strokes (scribbles, letters, side_by_side, outlines) have a light gradient
across them (3-15%). Filled kinds (EVEN_LIGHT: blobs, texture, specks) are lit evenly, with
noise under 1.2%: the page steps flatten uneven light with a window that takes a wide filled
area for paper, and a blob came out a ring (a 0) once in about 60.

Determinism: the kinds' order comes from ``numpy.random.default_rng([seed, 0])`` and page
``i`` from ``default_rng([seed, 1, i])``, so the same seed gives the same bytes, and page
``i`` depends on its kind, the seed and ``i`` only (not on the pages before it). The letters depend on the face files too:
the system's DejaVu faces (``fonts-dejavu-core``) in FONT_DIR, else matplotlib's copies
of the same faces (a dependency, so always there); :data:`FACES` lists them.

Pages whose preparation finds no ink (a speck lost in the noise) come back as zeros, the
image a blank page would be. Pure numpy; Pillow (drawing, faces) is imported when used.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import DataNotFoundError, InvalidInputError

KINDS: dict[str, float] = {
    "blobs": 0.15,
    "scribbles": 0.20,
    "letters": 0.20,
    "side_by_side": 0.15,
    "outlines": 0.10,
    "texture": 0.10,
    "specks": 0.10,
}
# The page's longer side, pixels, one of SIDES (about log-uniform over SIDE_RANGE), and its
# shorter side one of SHORTS of it (at least SIDE_RANGE[0]): a few dozen shapes, so that the
# pages of a chunk are prepared as a few stacks of one shape each, not one call a page.
SIDES = (28, 31, 34, 38, 42, 46, 51, 57, 64)
SHORTS = (0.55, 0.7, 0.85, 1.0)
SIDE_RANGE = (SIDES[0], SIDES[-1])
CHUNK = 2048  # pages made and prepared at a time: memory stays about 10 MB whatever n
SUPERSAMPLE = 2  # pages are drawn at this scale and reduced: antialiased edges
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FACES = (  # fonts-dejavu-core's faces, also shipped by matplotlib (mpl-data/fonts/ttf)
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf",
)
# Characters that are, or pass for, a digit or a stroke of one (turned up to 20 degrees and
# fitted into 20×20 as the preparation does), never drawn; cautious, so some of them are
# plainly not digits to a reader (they are left to the unseen set of tests/nondigits.py):
# 0: O o Q D ° º Θ θ ø Ø ∅ Φ Ω; 1: I l i j J | ! ¡ / \ ( ) [ ] { } ' ` , . : ; - _ ‐ −;
# 2: Z z ? Σ; 5: S s $ §; 6: b G δ ∂; 7: Γ < > ^; 8: B ß & ∞; 9: g q; a form's lines: # + =.
DIGIT_LIKE = frozenset(
    "0123456789OoQD°ºΘθøØ∅ΦΩIlijJ|!¡/\\()[]{}'`,.:;-_‐−Zz?ΣSs$§bGδ∂Γ<>^Bß&∞gq#+="
)
LETTERS = "ACEFHKLMNPRTUVWXYacdefhkmnprtuvwxy%@*~λπΔΨμω"
# Kinds drawn under even light (no gradient, little noise): flattening the light (softmax_core.
# page) takes a filled area wider than its window for paper, and a blob came out a ring, a 0.
EVEN_LIGHT = frozenset({"blobs", "texture", "specks"})
# Digit skeletons for side_by_side (no 1, 4 or 7: see the module docstring).
SIDE_BY_SIDE_DIGITS = "0235689"

Page = NDArray[np.uint8]
F64 = NDArray[np.float64]
Box = tuple[float, float, float, float]  # centre x, centre y, half width, half height (px)


# --- the public functions ------------------------------------------------------------------


def pages(n: int, *, seed: int) -> list[Page]:
    """``n`` raw grey pages (h, w) uint8, dark ink on light paper, not a digit on any of
    them (the kinds and their shares: the module docstring)."""
    plan = _plan(n, seed)
    return [_page(kind, seed, i) for i, kind in enumerate(plan)]


def negatives(n: int, *, seed: int) -> NDArray[np.uint8]:
    """``pages(n, seed=seed)`` prepared as scoring prepares an image: ``(n, 28, 28)``
    uint8, ink bright on dark (the prepared [0, 1] values times 255, rounded). Made and
    prepared ``CHUNK`` pages at a time, so the pages are never all held at once."""
    plan = _plan(n, seed)
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    for start in range(0, n, CHUNK):
        chunk = [_page(kind, seed, start + j) for j, kind in enumerate(plan[start : start + CHUNK])]
        out[start : start + len(chunk)] = _prepare(chunk)
    return out


def _prepare(grays: list[Page]) -> NDArray[np.uint8]:
    """Grey pages → ``(k, 28, 28)`` uint8 through :func:`softmax_core.normalize.normalize_stack`,
    the pages of one shape as one stack (as scoring stacks them: the same bits as one at a
    time); a page with no ink gives zeros."""
    from softmax_core.normalize import normalize_stack

    out = np.zeros((len(grays), 28, 28), dtype=np.uint8)
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, g in enumerate(grays):
        by_shape.setdefault(g.shape, []).append(i)
    for idx in by_shape.values():
        digits, _ = normalize_stack(np.stack([grays[i] for i in idx]))
        out[idx] = np.rint(np.clip(digits, 0.0, 1.0) * 255.0).astype(np.uint8)
    return out


# --- the plan and one page ------------------------------------------------------------------


def _plan(n: int, seed: int) -> list[str]:
    """The kind of each of ``n`` pages: each kind's quota (``n * share``, largest
    remainders), in an order shuffled by ``default_rng([seed, 0])``."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise InvalidInputError(f"n={n!r}: expected a whole number of pages, 0 or more")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InvalidInputError(f"seed={seed!r}: expected a whole number, 0 or more")
    names = list(KINDS)
    exact = np.array([KINDS[k] * n for k in names])
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: n - int(counts.sum())]] += 1
    plan = np.repeat(np.arange(len(names)), counts)
    rng = np.random.default_rng([int(seed), 0])
    return [names[k] for k in rng.permutation(plan).tolist()]


def _page(kind: str, seed: int, i: int) -> Page:
    """Page ``i`` of ``seed``, of ``kind``: its size, its ink drawn, paper and noise."""
    rng = np.random.default_rng([int(seed), 1, i])
    longer = SIDES[int(rng.integers(len(SIDES)))]
    shorter = max(SIDE_RANGE[0], round(longer * SHORTS[int(rng.integers(len(SHORTS)))]))
    h, w = (longer, shorter) if rng.random() < 0.5 else (shorter, longer)
    sheet = _Sheet(h, w)
    _DRAW[kind](sheet, rng)
    return _finish(sheet.cover(), rng, even=kind in EVEN_LIGHT)


def _finish(cover: NDArray[np.float32], rng: np.random.Generator, *, even: bool) -> Page:
    """Ink coverage (h, w) in [0, 1] → a grey page: paper, ink, light, noise, uint8.
    ``even``: no gradient, and noise under what makes the page steps flatten the light."""
    h, w = cover.shape
    paper = rng.uniform(0.78, 1.0)
    ink = rng.uniform(0.0, paper - 0.45)
    g = paper - (paper - ink) * cover.astype(np.float64)
    if rng.random() < 0.25 and not even:  # a light gradient across the page
        t = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        ramp = (xx * math.cos(t) + yy * math.sin(t)).astype(np.float64)
        ramp = (ramp - ramp.min()) / max(1e-9, float(np.ptp(ramp)))
        g *= 1.0 - rng.uniform(0.03, 0.15) * ramp
    g += rng.normal(0.0, rng.uniform(0.002, 0.012 if even else 0.03), (h, w))
    page: Page = np.rint(np.clip(g, 0.0, 1.0) * 255.0).astype(np.uint8)
    return page


# --- drawing --------------------------------------------------------------------------------


class _Sheet:
    """A page's ink coverage, drawn with Pillow at ``SUPERSAMPLE`` times the page's size;
    coordinates are the page's pixels (x right, y down)."""

    def __init__(self, h: int, w: int) -> None:
        from PIL import Image, ImageDraw

        self.h, self.w = h, w
        self.img = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
        self.draw = ImageDraw.Draw(self.img)

    def stroke(self, pts: F64, width: float, *, closed: bool = False) -> None:
        """A pen stroke through the points (m, 2), ``width`` pixels, round ends and corners.
        (Pillow's own round joins cost a Python call per point: here only the points where
        the stroke turns by more than 25 degrees get a round dot.)"""
        s = SUPERSAMPLE
        p = np.asarray(pts, dtype=np.float64) * s
        if closed:
            p = np.concatenate([p, p[:1]])
        wide = max(1.0, width * s)
        self.draw.line(p.ravel().tolist(), fill=255, width=round(wide))
        d = np.diff(p, axis=0)
        heading = np.arctan2(d[:, 1], d[:, 0])
        turn = np.abs((np.diff(heading) + np.pi) % (2 * np.pi) - np.pi)
        corners = [p[i + 1] for i in np.flatnonzero(turn > math.radians(25)).tolist()]
        ends = [] if closed else [p[0], p[-1]]
        r = round(wide) / 2
        for x, y in [*ends, *corners, *([p[0]] if closed else [])]:
            self.draw.ellipse([x - r, y - r, x + r, y + r], fill=255)

    def fill(self, pts: F64) -> None:
        """A filled polygon through the points (m, 2)."""
        self.draw.polygon((np.asarray(pts) * SUPERSAMPLE).ravel().tolist(), fill=255)

    def dot(self, x: float, y: float, r: float, level: int = 255) -> None:
        s = SUPERSAMPLE
        r = max(r * s, 0.5)
        self.draw.ellipse([x * s - r, y * s - r, x * s + r, y * s + r], fill=level)

    def add(self, layer: Any) -> None:
        """Another drawn layer (a Pillow "L" image of the sheet's size) over the ink."""
        from PIL import ImageChops

        self.img = ImageChops.lighter(self.img, layer)
        from PIL import ImageDraw

        self.draw = ImageDraw.Draw(self.img)

    def layer(self) -> Any:
        """A blank layer of the sheet's size (for :meth:`add`)."""
        from PIL import Image

        return Image.new("L", self.img.size, 0)

    def cover(self) -> NDArray[np.float32]:
        """(h, w) float32 coverage in [0, 1]: the drawing reduced by the box filter."""
        from PIL import Image

        small = self.img.resize((self.w, self.h), Image.Resampling.BOX)
        return np.asarray(small, dtype=np.float32) * np.float32(1 / 255)


def _box(sheet: _Sheet, rng: np.random.Generator, lo: float = 0.45, hi: float = 0.85) -> Box:
    """Where the ink goes: a box of ``lo``-``hi`` of each side, near the centre."""
    bw, bh = sheet.w * rng.uniform(lo, hi) / 2, sheet.h * rng.uniform(lo, hi) / 2
    cx = sheet.w / 2 + rng.uniform(-1, 1) * (sheet.w / 2 - bw) * 0.6
    cy = sheet.h / 2 + rng.uniform(-1, 1) * (sheet.h / 2 - bh) * 0.6
    return cx, cy, bw, bh


def _place(unit: F64, box: Box) -> F64:
    """Unit coordinates ([-1, 1] across the box) → page pixels."""
    cx, cy, bw, bh = box
    out: F64 = unit * np.array([bw, bh]) + np.array([cx, cy])
    return out


def _turn(pts: F64, angle: float) -> F64:
    c, s = math.cos(angle), math.sin(angle)
    out: F64 = pts @ np.array([[c, s], [-s, c]])
    return out


def _pen(box: Box, rng: np.random.Generator, lo: float, hi: float) -> float:
    """A pen width: ``lo``-``hi`` of the box's shorter side, at least 1.2 pixels."""
    return max(1.2, 2 * min(box[2], box[3]) * rng.uniform(lo, hi))


def _wobble(pts: F64, rng: np.random.Generator, amount: float, closed: bool = False) -> F64:
    """Points subdivided (8 per segment) and moved by a smooth random offset: a hand's line."""
    p = np.concatenate([pts, pts[:1]]) if closed else pts
    t = np.linspace(0, len(p) - 1, 8 * (len(p) - 1) + 1)
    fine = np.stack([np.interp(t, np.arange(len(p)), p[:, k]) for k in range(2)], axis=1)
    noise = rng.normal(0, amount, (len(fine) // 6 + 2, 2))
    at = np.linspace(0, len(noise) - 1, len(fine))
    smooth = np.stack([np.interp(at, np.arange(len(noise)), noise[:, k]) for k in range(2)], 1)
    if closed:
        smooth -= np.linspace(0, 1, len(fine))[:, None] * (smooth[-1] - smooth[0])
    out: F64 = fine + smooth
    return out


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float) -> F64:
    """Points on an elliptic arc from ``a0`` to ``a1`` degrees (y down: 90 is below)."""
    t = np.radians(np.linspace(a0, a1, max(4, int(abs(a1 - a0) / 10))))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


# --- the kinds --------------------------------------------------------------------------------


def _blobs(sheet: _Sheet, rng: np.random.Generator) -> None:
    box = _box(sheet, rng)
    k = int(rng.integers(1, 4))
    for _ in range(k):
        t = np.linspace(0, 2 * math.pi, 64, endpoint=False)
        r = np.ones_like(t)
        for j in range(2, 6):
            r += rng.uniform(-0.3, 0.3) / j**0.8 * np.cos(j * t + rng.uniform(0, 2 * math.pi))
        r = np.maximum(r, 0.35) * (rng.uniform(0.7, 1.0) if k == 1 else rng.uniform(0.3, 0.55))
        pts = np.stack([r * np.cos(t), r * rng.uniform(0.6, 1.0) * np.sin(t)], axis=1)
        centre = np.zeros(2) if k == 1 else rng.uniform(-0.45, 0.45, 2)
        pts = _turn(pts, rng.uniform(0, 2 * math.pi)) + centre
        sheet.fill(_place(pts, box))
        if rng.random() < 0.3:  # splatter
            for _ in range(int(rng.integers(2, 9))):
                a, d = rng.uniform(0, 2 * math.pi), rng.uniform(1.1, 1.5) * r.max()
                x, y = _place(centre + d * np.array([math.cos(a), math.sin(a)]), box)
                sheet.dot(float(x), float(y), rng.uniform(0.5, 0.08 * min(box[2], box[3]) + 0.6))


def _walk(rng: np.random.Generator) -> F64:
    """A meandering stroke in the unit box: about 3.6 units long, turning all the time, and
    folded back at the box's edges (±0.95) as a mirror folds it."""
    pos = rng.uniform(-0.7, 0.7, 2)
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, 0.2) + rng.normal(0, 0.45, 40))
    step = rng.uniform(0.06, 0.12, 40)[:, None] * np.stack([np.cos(heading), np.sin(heading)], 1)
    free = np.concatenate([pos[None], pos + np.cumsum(step, axis=0)])
    edge = 0.95  # a triangle wave of period 4 * edge: the free walk reflected into the box
    out: F64 = edge - np.abs(np.mod(free + edge, 4 * edge) - 2 * edge)
    return out


def _scribbles(sheet: _Sheet, rng: np.random.Generator) -> None:
    box = _box(sheet, rng, 0.5, 0.9)
    pen = _pen(box, rng, 0.03, 0.09)
    style = rng.choice(["walk", "loops", "zigzag", "spiral"], p=[0.5, 0.2, 0.15, 0.15])
    strokes: list[F64] = []
    if style == "walk":
        strokes = [_walk(rng) for _ in range(int(rng.integers(2, 5)))]
    elif style == "loops":  # a cursive chain of loops, "eeee" / "llll"
        m = int(rng.integers(3, 8))
        t = np.linspace(0, 2 * math.pi * m, 40 * m)
        r = rng.uniform(0.5, 0.9)
        x = t / (math.pi * m) - 1 + r * 0.3 * np.cos(t + math.pi)
        y = -r * np.sin(t + math.pi / 2) * rng.uniform(0.5, 1.0)
        strokes = [_turn(np.stack([x * 0.8, y], 1), rng.normal(0, 0.2))]
    elif style == "zigzag":
        m = int(rng.integers(4, 10))
        x = np.linspace(-0.9, 0.9, 2 * m + 1)
        y = np.where(np.arange(2 * m + 1) % 2 == 0, 1.0, -1.0) * rng.uniform(0.4, 0.9)
        pts = np.stack([x, y + rng.normal(0, 0.08, x.size)], 1)
        strokes = [_turn(pts, rng.uniform(0, 2 * math.pi))]
    else:  # a spiral of 2.25-3.5 turns (fewer would pass for a 6)
        t = np.linspace(0, 2 * math.pi * rng.uniform(2.25, 3.5), 200)
        r = 0.1 + 0.9 * t / t[-1]
        strokes = [np.stack([r * np.cos(t), r * np.sin(t) * rng.uniform(0.6, 1.0)], 1)]
    for s in strokes:
        sheet.stroke(_place(np.clip(_wobble(s, rng, 0.02), -1, 1), box), pen)


def _text(rng: np.random.Generator) -> str:
    """1-3 characters of LETTERS."""
    k = int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15]))
    return "".join(rng.choice(list(LETTERS), k).tolist())


@functools.cache
def _faces() -> tuple[Path, ...]:
    """The DejaVu faces: the system's, else matplotlib's copies."""
    import importlib.util

    found = [FONT_DIR / f for f in FACES if (FONT_DIR / f).is_file()]
    if found:
        return tuple(found)
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        mpl = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf"
        found = [mpl / f for f in FACES if (mpl / f).is_file()]
    if not found:
        raise DataNotFoundError(
            f"no DejaVu faces in {FONT_DIR} or matplotlib's mpl-data: install "
            "fonts-dejavu-core (apt) or matplotlib (pip)"
        )
    return tuple(found)


@functools.lru_cache(maxsize=16)  # each face object holds its file: 256 of them cost 60 MB
def _font(face: Path, size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.truetype(str(face), size)


def _letters(sheet: _Sheet, rng: np.random.Generator) -> None:
    text = _text(rng)
    faces = _faces()
    face = faces[int(rng.integers(len(faces)))]
    cx, cy, bw, bh = _box(sheet, rng, 0.5, 0.85)
    s = SUPERSAMPLE
    size = max(8, round(2 * bh * s))  # a first guess: the box's height
    bold = int(rng.integers(0, 3)) * max(1, size // 40)
    layer = sheet.layer()
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(layer)
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=_font(face, size), stroke_width=bold)
    fit = min(2 * bw * s / max(1, x1 - x0), 2 * bh * s / max(1, y1 - y0))
    size = max(8, int(size * fit))
    bold = min(bold, size // 20)
    draw.text(
        (cx * s, cy * s),
        text,
        font=_font(face, size),
        fill=255,
        anchor="mm",
        stroke_width=bold,
        stroke_fill=255,
    )
    angle = rng.uniform(-20, 20)
    sheet.add(layer.rotate(angle, Image.Resampling.BILINEAR, center=(cx * s, cy * s)))


def _skeleton(digit: str) -> list[F64]:
    """Pen strokes of a digit-like shape in the unit box ([0, 1], y down)."""
    pt = np.array
    if digit == "0":
        return [_arc(0.5, 0.5, 0.4, 0.5, -90, 285)]
    if digit == "2":
        top = _arc(0.5, 0.3, 0.38, 0.28, 200, 390)
        return [np.concatenate([top, pt([[0.08, 1.0], [0.95, 1.0]])])]
    if digit == "3":
        return [
            np.concatenate(
                [_arc(0.48, 0.26, 0.34, 0.25, 210, 450), _arc(0.48, 0.75, 0.4, 0.25, 270, 510)]
            )
        ]
    if digit == "5":
        head = pt([[0.85, 0.02], [0.2, 0.02], [0.17, 0.45]])
        return [np.concatenate([head, _arc(0.5, 0.68, 0.38, 0.3, 220, 500)])]
    if digit == "6":
        stem = pt([[0.75, 0.02], [0.45, 0.2], [0.22, 0.45], [0.17, 0.7]])
        return [np.concatenate([stem, _arc(0.5, 0.7, 0.33, 0.29, 180, 540)])]
    if digit == "8":
        return [
            np.concatenate(
                [_arc(0.5, 0.26, 0.3, 0.24, 90, 450), _arc(0.5, 0.74, 0.36, 0.25, 270, 630)]
            )
        ]
    if digit == "9":
        return [
            np.concatenate([_arc(0.45, 0.3, 0.33, 0.28, 0, 360), pt([[0.76, 0.6], [0.7, 1.0]])])
        ]
    raise ValueError(f"no skeleton for {digit!r}")


def _side_by_side(sheet: _Sheet, rng: np.random.Generator) -> None:
    m = 2 if rng.random() < 0.7 else 3
    chosen = rng.choice(list(SIDE_BY_SIDE_DIGITS), m).tolist()
    widths = rng.uniform(0.5, 0.75, m)  # each a fraction of the glyphs' height
    gaps = rng.uniform(-0.05, 0.2, m - 1) * widths[:-1]
    total = float(widths.sum() + gaps.sum())
    height = min(sheet.h * rng.uniform(0.4, 0.75), sheet.w * rng.uniform(0.6, 0.9) / total)
    slant = rng.uniform(-0.25, 0.25)
    pen = max(1.2, height * rng.uniform(0.08, 0.15))
    left = sheet.w / 2 - total * height / 2 + rng.uniform(-0.1, 0.1) * sheet.w * 0.3
    top = sheet.h / 2 - height / 2 + rng.uniform(-0.1, 0.1) * sheet.h
    x = left
    for j, d in enumerate(chosen):
        for s in _skeleton(d):
            u = _wobble(s, rng, 0.015)
            u = _turn(u - 0.5, rng.normal(0, 0.08)) + 0.5
            px = x + (u[:, 0] + slant * (0.5 - u[:, 1])) * widths[j] * height
            py = top + u[:, 1] * height * rng.uniform(0.9, 1.05)
            sheet.stroke(np.stack([px, py], 1), pen)
        x += float(widths[j] + (gaps[j] if j < m - 1 else 0)) * height


def _shape(name: str, rng: np.random.Generator) -> F64:
    """A closed outline in the unit box, as its corner points."""
    if name == "triangle":
        a = np.radians(np.array([90, 210, 330]) + rng.uniform(-20, 20, 3))
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "heart":
        t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        return np.stack([x / 17, y / 17], 1)
    if name == "arrow":
        s, h = rng.uniform(0.15, 0.35), rng.uniform(0.2, 0.5)
        return np.array([[-1, -s], [h, -s], [h, -0.8], [1, 0], [h, 0.8], [h, s], [-1, s]])
    if name == "cross":
        arm = float(rng.uniform(0.2, 0.4))
        half = np.array([[arm, -1], [arm, -arm], [1, -arm], [1, arm], [arm, arm], [arm, 1]])
        return np.concatenate([half, -half])
    if name == "bolt":
        return np.array(
            [[0.2, -1], [-0.6, 0.1], [0, 0.1], [-0.3, 1], [0.6, -0.2], [0, -0.2], [0.4, -1]]
        )
    if name == "crescent":
        outer = _arc(0, 0, 1, 1, 60, 300)
        inner = _arc(0.45, 0, 0.75, 0.8, 250, 110)
        return np.concatenate([outer, inner])
    # an irregular spiky polygon: corners alternately far and near (a convex one is an oval,
    # a 0, once wobbly)
    k = 2 * int(rng.integers(3, 6))
    a = np.sort(rng.uniform(0, 2 * math.pi, k))
    r = np.where(np.arange(k) % 2 == 0, rng.uniform(0.8, 1.0, k), rng.uniform(0.25, 0.5, k))
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


OUTLINES = ("triangle", "heart", "arrow", "cross", "bolt", "crescent", "polygon")


def _outlines(sheet: _Sheet, rng: np.random.Generator) -> None:
    box = _box(sheet, rng, 0.5, 0.85)
    pts = _shape(str(rng.choice(OUTLINES)), rng)
    pts = _turn(pts * np.array([1.0, rng.uniform(0.7, 1.0)]), rng.uniform(0, 2 * math.pi))
    pts /= max(1e-9, float(np.abs(pts).max()))
    sheet.stroke(_place(_wobble(pts, rng, 0.015, closed=True), box), _pen(box, rng, 0.03, 0.08))


def _region(sheet: _Sheet, rng: np.random.Generator, *, hatch: bool) -> Any:
    """A layer to clip a texture to: the whole page, or a blob-shaped patch of it (always
    a patch for hatching: hatching over the whole page is found blank)."""
    if rng.random() < 0.4 and not hatch:
        return None
    patch = _Sheet(sheet.h, sheet.w)
    _blobs_one(patch, rng)
    return patch.img


def _blobs_one(sheet: _Sheet, rng: np.random.Generator) -> None:
    t = np.linspace(0, 2 * math.pi, 48, endpoint=False)
    r = 1 + sum(rng.uniform(-0.2, 0.2) * np.cos(j * t + rng.uniform(0, 6.3)) for j in (2, 3))
    pts = np.stack([r * np.cos(t), r * np.sin(t)], 1) * 0.95
    sheet.fill(_place(pts, _box(sheet, rng, 0.55, 0.9)))


def _texture(sheet: _Sheet, rng: np.random.Generator) -> None:
    from PIL import Image, ImageChops, ImageDraw

    style = str(rng.choice(["blotches", "stipple", "hatch", "grain"]))
    layer = sheet.layer()
    W, H = layer.size
    if style == "blotches":
        g = int(rng.integers(3, 9))
        field = Image.fromarray(rng.random((g, g)).astype(np.float32), mode="F")
        smooth = np.asarray(field.resize((W, H), Image.Resampling.BICUBIC))
        q = np.quantile(smooth, rng.uniform(0.6, 0.85))
        layer = Image.fromarray(np.where(smooth > q, 255, 0).astype(np.uint8), mode="L")
    elif style == "stipple":
        draw = ImageDraw.Draw(layer)
        k = int(rng.integers(60, 400))
        centre = rng.uniform(0.3, 0.7, 2) * (W, H)
        spread = rng.uniform(0.15, 0.4) * min(W, H)
        for x, y in rng.normal(centre, spread, (k, 2)):
            r = rng.uniform(0.6, 2.2) * SUPERSAMPLE
            draw.ellipse([x - r, y - r, x + r, y + r], fill=255)
    elif style == "hatch":
        draw = ImageDraw.Draw(layer)
        first = rng.uniform(20, 70) + (90 if rng.random() < 0.5 else 0)
        angles = [first] if rng.random() < 0.5 else [first, first + rng.uniform(60, 100)]
        for deg in angles:
            a = math.radians(deg)
            d = np.array([math.cos(a), math.sin(a)])
            nrm = np.array([-d[1], d[0]])
            gap = rng.uniform(3, 9) * SUPERSAMPLE
            reach = math.hypot(W, H)
            for off in np.arange(-reach / 2, reach / 2, gap):
                p = np.array([W / 2, H / 2]) + off * nrm
                q0, q1 = p - reach * d, p + reach * d
                draw.line([*q0.tolist(), *q1.tolist()], fill=255, width=SUPERSAMPLE)
    else:  # salt grain
        p = rng.uniform(0.04, 0.15)
        grain = (rng.random((sheet.h, sheet.w)) < p).astype(np.uint8) * 255
        layer = Image.fromarray(grain, mode="L").resize((W, H), Image.Resampling.NEAREST)
    region = _region(sheet, rng, hatch=style == "hatch")
    if region is not None:
        layer = ImageChops.multiply(layer, region)
    sheet.add(layer)


def _specks(sheet: _Sheet, rng: np.random.Generator) -> None:
    for _ in range(int(rng.integers(1, 7))):
        x = rng.uniform(0.1, 0.9) * sheet.w
        y = rng.uniform(0.1, 0.9) * sheet.h
        sheet.dot(x, y, rng.uniform(0.6, 2.2), level=int(rng.integers(180, 256)))


_DRAW: dict[str, Callable[[_Sheet, np.random.Generator], None]] = {
    "blobs": _blobs,
    "scribbles": _scribbles,
    "letters": _letters,
    "side_by_side": _side_by_side,
    "outlines": _outlines,
    "texture": _texture,
    "specks": _specks,
}
