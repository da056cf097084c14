"""Digits as pages hold them: a seeded generator of form crops, for tests and ``benchmarks/pages.py``.

The ink is real: MNIST test digits (scaled up, their grey levels used as the pen's
coverage), and a share of printed digits drawn with the DejaVu faces on the machine
(Pillow's own face where DejaVu is missing). Each kind is its own page-making procedure,
with its own geometry, drawn on a sheet larger than the crop and then cut out the way a
person or a form reader cuts one character out of a page:

``box``      a row of printed boxes (separate, or sharing walls like a table; sometimes
             rows above and below), one digit per box, neighbours in the next boxes; the
             crop is the target box with a margin on each side that may reach into the
             neighbours or cut inside the frame.
``comb``     a comb field: a baseline with short ticks between the characters (sometimes
             taller end bars), open at the top; the digits sit on or just above the
             baseline; the crop is one cell, give or take, so ticks and neighbours' edges
             come in from the sides.
``ruled``    notebook paper: full-width ruling lines (sometimes a red margin line), the
             digit written on a line and often taller than the line spacing, so a line
             crosses it; neighbours on the same line; the crop is a window around it.
``squared``  squared (graph) paper: a grid of thin lines (sometimes every fifth one
             heavier) crossing the digit; neighbours in the next squares.
``plain``    a plain scan or photo: no lines, margins from tight to loose, sometimes dust
             specks and a neighbour's edge at the border.

Shared finishing, on every kind: paper tint and texture, pen colour (black, blue, pencil
grey), slight rotation (up to 3 degrees), the crop's size (its longer side 32 to 480
pixels, log-uniform), a light gradient, sometimes a soft shadow, sensor noise, grey or
RGB, JPEG (quality 55-95) or PNG. Lines are thinner than pen strokes, as printed lines are,
and many are light (blue, grey) but some are as dark as the ink.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives the same
files, byte for byte. Files are named ``<kind>/<n>_<label>.<ext>`` (``tests.scoring_data``'s
naming, so ``label_of`` reads the truth from the rows).
"""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

KINDS = ("box", "comb", "ruled", "squared", "plain")
PRINTED_SHARE = 0.1  # of the target digits; the rest are MNIST test digits
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SIDE_RANGE = (32, 480)  # the finished crop's longer side, pixels (log-uniform)

F32 = NDArray[np.float32]
Box = tuple[float, float, float, float]  # left, top, right, bottom (sheet units)


@dataclass(frozen=True)
class Glyph:
    """A digit's pen coverage in [0, 1] (h, w) at some resolution, and its label."""

    cover: F32
    label: int
    printed: bool = False


@dataclass(frozen=True)
class Page:
    """One finished crop: the image as saved, its label (-1: no digit), its kind."""

    image: Image.Image
    ext: str
    save_kw: dict[str, Any]
    label: int
    kind: str
    printed: bool = False
    side: float = 0.0

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        self.image.save(buf, format="JPEG" if self.ext == "jpg" else "PNG", **self.save_kw)
        return buf.getvalue()


# --- ink ----------------------------------------------------------------------------------


def mnist_glyph(d: NDArray[np.uint8], label: int) -> Glyph:
    """An MNIST digit as pen coverage, cropped to its ink (grey level / 255)."""
    a = np.asarray(d, dtype=np.float32) / np.float32(255)
    rows, cols = np.flatnonzero(a.max(axis=1) > 0.1), np.flatnonzero(a.max(axis=0) > 0.1)
    return Glyph(a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], label)


@functools.cache
def _faces() -> tuple[str | None, ...]:
    found = sorted(str(p) for p in FONT_DIR.glob("DejaVu*.ttf") if "MathTeX" not in p.name)
    return tuple(found) or (None,)


def printed_glyph(label: int, rng: np.random.Generator) -> Glyph:
    """A printed digit in one of the DejaVu faces, as pen coverage cropped to its ink."""
    faces = _faces()
    face = faces[int(rng.integers(len(faces)))]
    font = ImageFont.load_default(96) if face is None else ImageFont.truetype(face, 96)
    img = Image.new("L", (160, 160), 0)
    ImageDraw.Draw(img).text((80, 80), str(label), fill=255, font=font, anchor="mm")
    a = np.asarray(img, dtype=np.float32) / np.float32(255)
    rows, cols = np.flatnonzero(a.max(axis=1) > 0.1), np.flatnonzero(a.max(axis=0) > 0.1)
    return Glyph(a[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1], label, printed=True)


# --- the sheet ----------------------------------------------------------------------------


class Sheet:
    """A page region in sheet units, drawn at ``scale`` pixels per unit: paper reflectance,
    a layer of printed lines and a layer of pen ink (coverages), each composited once."""

    def __init__(self, left: float, top: float, right: float, bottom: float, scale: float):
        self.x0, self.y0, self.scale = left, top, scale
        self.w = max(8, round((right - left) * scale))
        self.h = max(8, round((bottom - top) * scale))
        self.lines = Image.new("L", (self.w, self.h), 0)
        self._draw = ImageDraw.Draw(self.lines)
        self.ink = np.zeros((self.h, self.w), np.float32)
        self.specks = np.zeros((self.h, self.w), np.float32)

    def px(self, x: float, y: float) -> tuple[float, float]:
        return (x - self.x0) * self.scale, (y - self.y0) * self.scale

    def line(self, x0: float, y0: float, x1: float, y1: float, width: float) -> None:
        """A printed straight line (sheet units); at least one pixel wide."""
        w = max(1, round(width * self.scale))
        self._draw.line([self.px(x0, y0), self.px(x1, y1)], fill=255, width=w)

    def rect(self, left: float, top: float, right: float, bottom: float, width: float) -> None:
        for a, b, c, d in (
            (left, top, right, top),
            (right, top, right, bottom),
            (right, bottom, left, bottom),
            (left, bottom, left, top),
        ):
            self.line(a, b, c, d, width)
        half = width / 2  # close the corners
        for x, y in ((left, top), (right, top), (left, bottom), (right, bottom)):
            (a, b), (c, d) = self.px(x - half, y - half), self.px(x + half, y + half)
            self._draw.rectangle([a, b, c, d], fill=255)

    def write(self, glyph: Glyph, cx: float, cy: float, height: float) -> Box:
        """Write ``glyph`` with its ink box ``height`` units tall, centred at (cx, cy).
        Returns the ink box in sheet units."""
        gh, gw = glyph.cover.shape
        ph = max(2, round(height * self.scale))
        pw = max(1, round(gw * ph / gh))
        src = Image.fromarray(glyph.cover, mode="F")
        cover = np.clip(np.asarray(src.resize((pw, ph), Image.Resampling.BICUBIC)), 0, 1)
        px, py = self.px(cx, cy)
        top, left = round(py - ph / 2), round(px - pw / 2)
        _max_into(self.ink, cover, top, left)
        width = pw / self.scale
        return cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2

    def speck(self, x: float, y: float, radius_px: float, darkness: float) -> None:
        px, py = self.px(x, y)
        yy, xx = np.ogrid[: self.h, : self.w]
        blob = np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * radius_px**2)) * darkness
        np.maximum(self.specks, blob.astype(np.float32), out=self.specks)

    def render(self, paper: F32, line_colour: F32, pen: F32, rng: np.random.Generator) -> F32:
        """(h, w, 3) reflectance: paper with texture, lines and ink multiplied in."""
        texture = rng.normal(0, 0.012, (self.h // 4 + 1, self.w // 4 + 1)).astype(np.float32)
        grain = np.kron(texture, np.ones((4, 4), np.float32))[: self.h, : self.w]
        out = np.broadcast_to(paper, (self.h, self.w, 3)) * (1 + grain[..., None])
        lines = np.asarray(self.lines, np.float32)[..., None] / 255
        out = out * (1 - lines * (1 - line_colour))
        ink = np.clip(self.ink, 0, 1)[..., None]
        out = out * (1 - ink * (1 - pen))
        out = out * (1 - self.specks[..., None] * 0.8)
        result: F32 = out.astype(np.float32)
        return result


def _max_into(dst: F32, src: F32, top: int, left: int) -> None:
    h, w = src.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, dst.shape[0]), min(left + w, dst.shape[1])
    if t1 > t0 and l1 > l0:
        region = src[t0 - top : t1 - top, l0 - left : l1 - left]
        np.maximum(dst[t0:t1, l0:l1], region, out=dst[t0:t1, l0:l1])


# --- colours ------------------------------------------------------------------------------

_PENS = {  # reflectance per channel where the pen covers the paper fully
    "black": (0.08, 0.08, 0.1),
    "blue": (0.12, 0.18, 0.55),
    "dark-blue": (0.08, 0.1, 0.35),
    "pencil": (0.32, 0.32, 0.34),
}
_LINE_COLOURS = {
    "black": (0.12, 0.12, 0.12),
    "grey": (0.45, 0.45, 0.45),
    "light-grey": (0.7, 0.7, 0.7),
    "blue": (0.45, 0.62, 0.9),
    "light-blue": (0.66, 0.8, 0.96),
    "green": (0.55, 0.78, 0.6),
    "red": (0.9, 0.35, 0.35),
}


def _colour(table: dict[str, tuple[float, float, float]], names: Sequence[str], rng: Any) -> F32:
    return np.array(table[names[int(rng.integers(len(names)))]], np.float32)


def _paper(rng: np.random.Generator) -> F32:
    base = rng.uniform(0.86, 0.98)
    tint = rng.uniform(-0.03, 0.03, 3)
    return np.clip(base + tint, 0, 1).astype(np.float32)


# --- the kinds: each a page-making procedure ------------------------------------------------
#
# Units: the target digit's ink is about 1 unit tall. Each procedure writes the digit and
# its neighbours on a Sheet, draws its lines, and returns (sheet, crop box in sheet units).

Neighbours = Callable[[], Glyph]
Made = tuple[Sheet, Box, str]  # the sheet, the crop, the line colour's name


def _sheet_for(crop: Box, side: float, pad: float = 0.12) -> Sheet:
    """A sheet around ``crop`` (with room to rotate), drawn at twice the finished size."""
    left, top, right, bottom = crop
    longer = max(right - left, bottom - top)
    scale = 2 * side / longer
    return Sheet(
        left - pad * longer, top - pad * longer, right + pad * longer, bottom + pad * longer, scale
    )


def _edges(
    sheet: Sheet,
    others: Neighbours,
    rng: np.random.Generator,
    target: Box,
    crop: Box,
    centre_y: Callable[[float], float],
    chance: float = 0.7,
) -> None:
    """Neighbours left and right of the target (each with probability ``chance``), placed so
    that up to 40% of their width reaches into the crop: their edges, not whole digits."""
    for sign in (-1, 1):
        if rng.random() >= chance:
            continue
        other = others()
        h2 = rng.uniform(0.75, 1.1)
        w2 = h2 * other.cover.shape[1] / other.cover.shape[0]
        reach = rng.uniform(-0.1, 0.4) * w2
        gap = 0.08 * (target[3] - target[1])
        if sign > 0:
            near = max(crop[2] - reach, target[2] + gap)
        else:
            near = min(crop[0] + reach, target[0] - gap)
        sheet.write(other, near + sign * w2 / 2, centre_y(h2), h2)


def make_box(g: Glyph | None, others: Neighbours, rng: np.random.Generator, side: float) -> Made:
    bh = 1.0 / rng.uniform(0.55, 0.85)  # the box's inner height; the digit ~1 unit
    bw = bh * rng.uniform(0.75, 1.3)
    t = bh * rng.uniform(0.012, 0.05)
    shared = rng.random() < 0.4  # boxes sharing walls, like a table's cells
    gap = 0.0 if shared else bw * rng.uniform(0.08, 0.5)
    rows = (-1, 0, 1) if rng.random() < 0.25 else (0,)
    vgap = 0.0 if shared else bh * rng.uniform(0.15, 0.6)
    margins = rng.uniform(-0.04, 0.3, 4) * np.array([bw, bh, bw, bh])
    crop = (-margins[0], -margins[1], bw + margins[2], bh + margins[3])
    sheet = _sheet_for(crop, side)
    colour = ("black", "grey", "black", "blue", "red", "light-blue")[int(rng.integers(6))]
    for r in rows:
        for c in (-2, -1, 0, 1, 2):
            left, top = c * (bw + gap), r * (bh + vgap)
            sheet.rect(left, top, left + bw, top + bh, t)
            glyph = g if (r, c) == (0, 0) else (others() if rng.random() < 0.75 else None)
            if glyph is None:
                continue
            height = rng.uniform(0.85, 1.15) if (r, c) == (0, 0) else rng.uniform(0.55, 0.9) * bh
            jx, jy = rng.uniform(-0.09, 0.09) * bw, rng.uniform(-0.08, 0.08) * bh
            sheet.write(glyph, left + bw / 2 + jx, top + bh / 2 + jy, height)
    return sheet, crop, colour


def make_comb(g: Glyph | None, others: Neighbours, rng: np.random.Generator, side: float) -> Made:
    cw = 1.0 / rng.uniform(0.5, 0.8)  # the cell's width; the digit ~1 unit tall
    ch = cw * rng.uniform(1.0, 1.5)  # from the baseline up to where the field ends
    tick = ch * rng.uniform(0.15, 0.5)
    t = cw * rng.uniform(0.015, 0.05)
    end_bars = rng.random() < 0.4  # the field's two ends drawn full height
    base = ch
    n_cells = 7
    first = -3
    colour = ("black", "grey", "red", "blue", "light-blue")[int(rng.integers(5))]
    margins = rng.uniform(-0.03, 0.3, 2) * cw
    above, below = rng.uniform(0.02, 0.25) * ch, rng.uniform(0.05, 0.35) * ch
    crop = (-margins[0], base - ch - above, cw + margins[1], base + below)
    sheet = _sheet_for(crop, side)
    left_end, right_end = first * cw, (first + n_cells) * cw
    sheet.line(left_end, base, right_end, base, t)
    for k in range(first, first + n_cells + 1):
        top = base - (ch if end_bars and k in (first, first + n_cells) else tick)
        sheet.line(k * cw, base + t / 2, k * cw, top, t)
    for k in range(first, first + n_cells):
        glyph = g if k == 0 else (others() if rng.random() < 0.8 else None)
        if glyph is None:
            continue
        height = rng.uniform(0.85, 1.15) if k == 0 else ch * rng.uniform(0.5, 0.8)
        lift = rng.uniform(-0.04, 0.15) * ch  # above the baseline; < 0: over it
        sheet.write(
            glyph, k * cw + cw / 2 + rng.uniform(-0.1, 0.1) * cw, base - lift - height / 2, height
        )
    return sheet, crop, colour


def make_ruled(g: Glyph | None, others: Neighbours, rng: np.random.Generator, side: float) -> Made:
    s = 1.0 / rng.uniform(0.7, 1.6)  # line spacing; the digit ~1 unit, often taller than s
    t = s * rng.uniform(0.012, 0.045)
    height = rng.uniform(0.9, 1.1)
    cy = -rng.uniform(-0.12, 0.06) * s - height / 2  # the digit's bottom near the line y=0
    crop_h = height * rng.uniform(1.3, 2.6)
    crop_w = crop_h * rng.uniform(0.7, 1.3)
    cx = rng.uniform(-0.1, 0.1) * crop_w
    dy = rng.uniform(-0.1, 0.1) * crop_h
    crop = (cx - crop_w / 2, cy + dy - crop_h / 2, cx + crop_w / 2, cy + dy + crop_h / 2)
    sheet = _sheet_for(crop, side)
    colour = ("light-blue", "blue", "grey", "light-grey", "black")[int(rng.integers(5))]
    span = 4 * max(crop_w, crop_h)
    k0 = math.floor((crop[1] - span) / s)
    for k in range(k0, k0 + int(3 * span / s) + 2):
        sheet.line(-span, k * s, span, k * s, t)
    if rng.random() < 0.25:  # a margin line, red, somewhere to the left or right
        mx = rng.choice([-1, 1]) * rng.uniform(0.3, 0.9) * crop_w
        sheet.line(mx, -span, mx, span, t * 1.5)
    if g is not None:
        target = sheet.write(g, 0.0, cy, height)
        _edges(sheet, others, rng, target, crop, lambda h2: -rng.uniform(-0.1, 0.05) * s - h2 / 2)
    return sheet, crop, colour


def make_squared(
    g: Glyph | None, others: Neighbours, rng: np.random.Generator, side: float
) -> Made:
    s = 1.0 / rng.uniform(0.5, 1.6)  # the grid's pitch; a digit fills one square or more
    t = s * rng.uniform(0.01, 0.04)
    heavy = rng.random() < 0.2  # every fifth line heavier (engineering paper)
    height = rng.uniform(0.9, 1.1)
    if rng.random() < 0.5:  # centred in a square
        cx, cy = s / 2, s / 2
    else:
        cx, cy = rng.uniform(0, s), rng.uniform(0, s)
    crop_h = height * rng.uniform(1.3, 2.6)
    crop_w = crop_h * rng.uniform(0.7, 1.3)
    ox, oy = rng.uniform(-0.1, 0.1) * crop_w, rng.uniform(-0.1, 0.1) * crop_h
    crop = (cx + ox - crop_w / 2, cy + oy - crop_h / 2, cx + ox + crop_w / 2, cy + oy + crop_h / 2)
    sheet = _sheet_for(crop, side)
    colour = ("light-grey", "light-blue", "green", "grey", "blue", "black")[int(rng.integers(6))]
    span = 4 * max(crop_w, crop_h)
    n = int(2 * span / s) + 2
    for k in range(-n, n + 1):
        w = t * (2.2 if heavy and k % 5 == 0 else 1.0)
        sheet.line(k * s, cy - span, k * s, cy + span, w)
        sheet.line(cx - span, k * s, cx + span, k * s, w)
    if g is not None:
        target = sheet.write(g, cx, cy, height)
        _edges(sheet, others, rng, target, crop, lambda h2: cy + rng.uniform(-0.15, 0.15))
    return sheet, crop, colour


def make_plain(g: Glyph | None, others: Neighbours, rng: np.random.Generator, side: float) -> Made:
    height = 1.0
    cx, cy = 0.0, 0.0
    width = 0.7 if g is None else height * g.cover.shape[1] / g.cover.shape[0]
    tight = rng.random() < 0.3
    m = rng.uniform(0.03, 0.15, 4) if tight else rng.uniform(0.1, 0.8, 4)
    crop = (
        cx - width / 2 - m[0],
        cy - height / 2 - m[1],
        cx + width / 2 + m[2],
        cy + height / 2 + m[3],
    )
    sheet = _sheet_for(crop, side)
    target = (-width / 2, -height / 2, width / 2, height / 2)
    if g is not None:
        target = sheet.write(g, cx, cy, height)
    _edges(sheet, others, rng, target, crop, lambda h2: cy + rng.uniform(-0.1, 0.1), chance=0.15)
    if rng.random() < 0.3:  # dust
        for _ in range(int(rng.integers(1, 6))):
            x, y = rng.uniform(crop[0], crop[2]), rng.uniform(crop[1], crop[3])
            sheet.speck(x, y, rng.uniform(0.6, 2.0), rng.uniform(0.3, 0.9))
    return sheet, crop, "black"


MAKERS: dict[str, Callable[[Glyph | None, Neighbours, np.random.Generator, float], Made]] = {
    "box": make_box,
    "comb": make_comb,
    "ruled": make_ruled,
    "squared": make_squared,
    "plain": make_plain,
}
assert tuple(MAKERS) == KINDS


# --- finishing: rotation, size, light, noise, format ----------------------------------------


def _light(h: int, w: int, rng: np.random.Generator) -> F32:
    """A multiplicative light field: exposure, a linear gradient, sometimes a soft shadow."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / max(w - 1, 1) - 0.5, yy / max(h - 1, 1) - 0.5
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * u + np.sin(angle) * v  # -0.7 .. 0.7
    field = rng.uniform(0.75, 1.05) * (1 - rng.uniform(0, 0.5) * (ramp + 0.7) / 1.4)
    if rng.random() < 0.35:  # a soft shadow's edge across the crop (a hand, a phone)
        a2 = rng.uniform(0, 2 * np.pi)
        d = np.cos(a2) * u + np.sin(a2) * v - rng.uniform(-0.3, 0.3)
        soft = rng.uniform(0.05, 0.25)
        field *= 1 - rng.uniform(0.2, 0.5) / (1 + np.exp(-d / soft * 4))
    result: F32 = field.astype(np.float32)
    return result


def finish(
    sheet: Sheet, crop: Box, line_colour: str, rng: np.random.Generator, side: float
) -> tuple[Image.Image, str, dict[str, Any]]:
    pen = _colour(_PENS, list(_PENS), rng)
    paper = _paper(rng)
    lines = np.array(_LINE_COLOURS[line_colour], np.float32)
    refl = sheet.render(paper, lines, pen, rng)
    img = Image.fromarray((np.clip(refl, 0, 1) * 255).round().astype(np.uint8), mode="RGB")
    (x0, y0), (x1, y1) = sheet.px(crop[0], crop[1]), sheet.px(crop[2], crop[3])
    angle = float(rng.uniform(-3, 3)) if rng.random() < 0.8 else 0.0
    if angle:
        fill = tuple(int(c * 255) for c in paper)
        img = img.rotate(
            angle, Image.Resampling.BICUBIC, center=((x0 + x1) / 2, (y0 + y1) / 2), fillcolor=fill
        )
    img = img.crop((round(x0), round(y0), round(x1), round(y1)))
    w, h = img.size
    longer = max(w, h)
    ow, oh = max(8, round(w * side / longer)), max(8, round(h * side / longer))
    img = img.resize((ow, oh), Image.Resampling.LANCZOS)
    a = np.asarray(img, np.float32) * _light(oh, ow, rng)[..., None]
    a = a + rng.normal(0, rng.uniform(0, 5), a.shape).astype(np.float32)
    out = Image.fromarray(np.clip(a, 0, 255).round().astype(np.uint8), mode="RGB")
    if rng.random() < 0.4:
        out = out.convert("L")
    if rng.random() < 0.5:
        return out, "jpg", {"quality": int(rng.integers(55, 96))}
    return out, "png", {}


def make_page(
    kind: str,
    glyph: Glyph | None,
    others: Neighbours,
    rng: np.random.Generator,
    side: float | None = None,
) -> Page:
    """One page of ``kind`` holding ``glyph`` (None: the form left blank)."""
    if side is None:
        side = float(np.exp(rng.uniform(np.log(SIDE_RANGE[0]), np.log(SIDE_RANGE[1]))))
    sheet, crop, colour = MAKERS[kind](glyph, others, rng, side)
    img, ext, kw = finish(sheet, crop, colour, rng, side)
    label = -1 if glyph is None else glyph.label
    return Page(img, ext, kw, label, kind, glyph is not None and glyph.printed, side)


class Source:
    """Where the digits come from: MNIST test digits (x, y), some printed, all seeded."""

    def __init__(self, x: Any, y: Any, rng: np.random.Generator, printed: float = PRINTED_SHARE):
        self.x, self.y, self.rng, self.printed = x, y, rng, printed

    def target(self, index: int | None = None) -> Glyph:
        if index is None and self.rng.random() < self.printed:
            return printed_glyph(int(self.rng.integers(10)), self.rng)
        i = int(self.rng.integers(len(self.y))) if index is None else index
        return mnist_glyph(np.asarray(self.x[i]), int(self.y[i]))

    def neighbour(self) -> Glyph:
        i = int(self.rng.integers(len(self.y)))
        return mnist_glyph(np.asarray(self.x[i]), int(self.y[i]))


def pages(
    x: Any,
    y: Any,
    per_kind: int,
    *,
    seed: int = 0,
    kinds: Sequence[str] = KINDS,
    printed: float = PRINTED_SHARE,
    indices: Sequence[int] | None = None,
) -> list[Page]:
    """``per_kind`` pages of each kind. With ``indices`` the targets are those MNIST test
    digits (cycled; no printed ones), else drawn at random with ``printed`` of them printed."""
    rng = np.random.default_rng(seed)
    source = Source(x, y, rng, printed if indices is None else 0.0)
    out: list[Page] = []
    for kind in kinds:
        for n in range(per_kind):
            index = None if indices is None else int(indices[n % len(indices)])
            out.append(make_page(kind, source.target(index), source.neighbour, rng))
    return out


def write_pages(folder: Path, made: Sequence[Page]) -> Path:
    """Each page as ``folder/<kind>/<n>_<label>.<ext>``."""
    for n, page in enumerate(made):
        sub = folder / page.kind
        sub.mkdir(parents=True, exist_ok=True)
        page.image.save(sub / f"{n:05d}_{page.label}.{page.ext}", **page.save_kw)
    return folder
