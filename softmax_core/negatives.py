"""Seeded images that are not digits, prepared as scoring prepares images.

``negatives(n, seed=s)`` draws ``n`` pictures on a 56×56 page (dark ink on light, as a
scan): filled blobs, scribbles (random walks), letters of the DejaVu faces (those that do
not look like a digit), stars and crosses, hatching and speckle noise; then each goes
through the scoring preparation (:func:`softmax_core.normalize.normalize_stack`) and is
kept as ``uint8`` 28×28, as a labelled dataset keeps its images. Same ``n`` and ``seed``:
the same bytes. No downloads: Pillow draws everything (its own font when DejaVu is absent).
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

PAGE = 56
FONTS = Path("/usr/share/fonts/truetype/dejavu")
FACES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
# Letters that no reader would take for a digit (no O, l, I, S, Z, B, G, g, q, b, ...).
LETTERS = "ACEFHKMNPRTUVWXYacdefhkmnprtuvwxy@#&%?!*+=$€£"
KINDS = ("blob", "scribble", "letter", "star", "hatch", "noise")


@cache
def _font(face: str, size: int) -> Any:
    from PIL import ImageFont

    path = FONTS / face
    if path.is_file():
        return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def _draw(kind: str, rng: np.random.Generator) -> NDArray[np.uint8]:
    from PIL import Image, ImageDraw

    img = Image.new("L", (PAGE, PAGE), 255)
    d = ImageDraw.Draw(img)
    ink = int(rng.integers(0, 90))
    width = int(rng.integers(2, 6))
    c = PAGE / 2
    if kind == "blob":
        for _ in range(int(rng.integers(1, 4))):
            k = int(rng.integers(5, 10))
            ang = np.sort(rng.uniform(0, 2 * math.pi, k))
            r = rng.uniform(6, 22, k)
            cx, cy = rng.uniform(18, 38, 2)
            d.polygon(
                [
                    (cx + ri * math.cos(a), cy + ri * math.sin(a))
                    for a, ri in zip(ang, r, strict=True)
                ],
                fill=ink,
            )
    elif kind == "scribble":
        steps = rng.normal(0, 7, (int(rng.integers(8, 30)), 2)).cumsum(axis=0)
        pts = np.clip(steps - steps.mean(axis=0) + c, 3, PAGE - 3)
        d.line([tuple(p) for p in pts.tolist()], fill=ink, width=width, joint="curve")
    elif kind == "letter":
        font = _font(FACES[int(rng.integers(len(FACES)))], int(rng.integers(28, 46)))
        text = LETTERS[int(rng.integers(len(LETTERS)))]
        d.text((c, c), text, fill=ink, font=font, anchor="mm")
        img = img.rotate(float(rng.uniform(-20, 20)), fillcolor=255)
    elif kind == "star":
        k = int(rng.integers(3, 9))
        radius = float(rng.uniform(12, 24))
        a0 = float(rng.uniform(0, math.pi))
        for i in range(k):
            turn = a0 + math.pi * i / k
            dx, dy = radius * math.cos(turn), radius * math.sin(turn)
            d.line([(c - dx, c - dy), (c + dx, c + dy)], fill=ink, width=width)
    elif kind == "hatch":
        tilt = float(rng.uniform(0, math.pi))
        gap = float(rng.uniform(4, 9))
        for off in np.arange(-20, 21, gap).tolist():
            nx, ny = -math.sin(tilt) * off, math.cos(tilt) * off
            dx, dy = 18 * math.cos(tilt), 18 * math.sin(tilt)
            d.line([(c + nx - dx, c + ny - dy), (c + nx + dx, c + ny + dy)], fill=ink, width=2)
    else:  # speckle noise
        pix = np.asarray(img).copy()
        mask = rng.random((PAGE, PAGE)) < rng.uniform(0.05, 0.3)
        pix[mask] = ink
        return pix
    return np.asarray(img, dtype=np.uint8)


def negatives(n: int, *, seed: int) -> NDArray[np.uint8]:
    """``n`` non-digit images ``(n, 28, 28) uint8``, prepared as scoring prepares images
    (bright ink on dark), the kinds in turn; deterministic for a given ``seed``."""
    from softmax_core.normalize import normalize_stack

    rng = np.random.default_rng([seed, 0x4E6])
    out = np.zeros((n, 28, 28), dtype=np.uint8)
    done = 0
    while done < n:
        want = n - done
        pages: NDArray[Any] = np.stack(
            [_draw(KINDS[(done + i) % len(KINDS)], rng) for i in range(want)]
        )
        digits, errors = normalize_stack(pages)
        for digit, error in zip(digits, errors, strict=True):
            if error is None and done < n:
                out[done] = np.rint(np.clip(digit, 0.0, 1.0) * 255).astype(np.uint8)
                done += 1
    return out
