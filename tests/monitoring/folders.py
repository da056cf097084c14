"""The drift check's three folders, made in the test: letters (not digits), Eastern
Arabic-Indic digits (a script the model never saw), both rendered with the DejaVu fonts,
and MNIST training digits as PNGs (digits like the reference's, which is MNIST test)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

FONTS = Path("/usr/share/fonts/truetype/dejavu")
FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSerif-Bold.ttf",
)
LETTERS = "ABCDEFGHJKLMNPQRTUVWXYZabdefghkmnpqrtwxyz"  # not the ones that look like digits
ARABIC_INDIC = "".join(chr(0x660 + d) for d in range(10))  # ٠١٢٣٤٥٦٧٨٩


def render(folder: Path, glyphs: str, n: int, *, seed: int) -> Path:
    """``n`` PNGs of ``glyphs`` drawn dark on light with the DejaVu faces, at sizes and
    places drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        glyph = glyphs[int(rng.integers(len(glyphs)))]
        face = FONTS / FACES[int(rng.integers(len(FACES)))]
        size = int(rng.integers(36, 56))
        img = Image.new("L", (72, 72), 255)
        font = ImageFont.truetype(str(face), size)
        ImageDraw.Draw(img).text(
            (36 + int(rng.integers(-6, 7)), 36 + int(rng.integers(-6, 7))),
            glyph,
            fill=int(rng.integers(0, 60)),
            font=font,
            anchor="mm",
        )
        img.save(folder / f"{i:05d}.png")
    return folder


def mnist_pngs(folder: Path, images: NDArray[np.uint8], n: int, *, seed: int) -> Path:
    """``n`` digits drawn from ``images`` (MNIST training digits) written as 28×28 PNGs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i, k in enumerate(rng.choice(len(images), size=n, replace=False)):
        Image.fromarray(np.asarray(images[k])).save(folder / f"{i:05d}.png")
    return folder
