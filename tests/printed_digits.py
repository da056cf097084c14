"""Printed digits, a domain that is not MNIST: the users' data of the datasets issue.

Each digit is drawn with a font (a face and a size), dark on a light page, turned by a
small angle, with sensor noise, and saved as PNG in class folders ``<root>/<digit>/``.
Tests use Pillow's built-in font (``ImageFont.load_default(size)``, on every machine);
``benchmarks/own_data.py`` also uses the faces installed on the machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")


def system_fonts() -> list[str]:
    """Paths of the TrueType/OpenType faces installed here, sorted."""
    found: list[str] = []
    for d in FONT_DIRS:
        for ext in ("*.ttf", "*.otf"):
            found += [str(p) for p in Path(d).rglob(ext)]
    return sorted(set(found))


def _font(face: str | None, size: int) -> Any:
    return ImageFont.load_default(size) if face is None else ImageFont.truetype(face, size)


def render(digit: int, face: str | None, size: int, angle: float, rng: np.random.Generator) -> Any:
    """One printed digit: a grayscale PIL image, dark ink on a light, noisy page."""
    font = _font(face, size)
    page = Image.new("L", (size * 2, size * 2), 235)
    draw = ImageDraw.Draw(page)
    draw.text((size, size), str(digit), fill=20, font=font, anchor="mm")
    page = page.rotate(angle, resample=Image.Resampling.BILINEAR, fillcolor=235)
    noisy = np.asarray(page, dtype=np.float32) + rng.normal(0, 12, (page.height, page.width))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def write_printed(
    root: Path,
    per_class: int,
    *,
    seed: int = 0,
    faces: Sequence[str | None] = (None,),
    sizes: Sequence[int] = (22, 30, 40),
    max_angle: float = 8.0,
    start: int = 0,
) -> Path:
    """``per_class`` printed images of each digit under ``root/<digit>/p<i>.png``.

    Every image differs (face, size, angle and noise drawn from ``seed``); ``start``
    offsets the file names so a second call adds new files beside the first's.
    """
    rng = np.random.default_rng(seed)
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            face = faces[int(rng.integers(len(faces)))]
            size = int(sizes[int(rng.integers(len(sizes)))])
            angle = float(rng.uniform(-max_angle, max_angle))
            render(digit, face, size, angle, rng).save(folder / f"p{i:05d}.png")
    return root
