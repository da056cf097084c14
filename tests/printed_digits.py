"""Printed digits, domains that are not MNIST: the users' data of the datasets issue.

Each digit is drawn with a font (a face and a size), dark on a light page, slanted and
turned by small angles, with sensor noise, and saved as PNG in class folders
``<root>/<digit>/``. Tests use Pillow's built-in font (``ImageFont.load_default(size)``,
on every machine); ``benchmarks/own_data.py`` also uses the faces installed here.

:func:`write_script` draws a script MNIST never saw: the Eastern Arabic-Indic digits
٠١٢٣٤٥٦٧٨٩ (U+0660-U+0669), in the DejaVu faces that have them (:func:`script_fonts`).
Its zero is a dot and its five a ring: an MNIST model reads the five as a zero and gets
about one in five of them right.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")
EASTERN_ARABIC = "٠١٢٣٤٥٦٧٨٩"  # U+0660..U+0669: the digits 0..9 of the Arabic script
DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
# The DejaVu faces with glyphs for EASTERN_ARABIC (the oblique ones have none: slants are
# drawn by shearing).
SCRIPT_FACES = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)


def system_fonts() -> list[str]:
    """Paths of the TrueType/OpenType faces installed here, sorted."""
    found: list[str] = []
    for d in FONT_DIRS:
        for ext in ("*.ttf", "*.otf"):
            found += [str(p) for p in Path(d).rglob(ext)]
    return sorted(set(found))


def _font(face: str | None, size: int) -> Any:
    return ImageFont.load_default(size) if face is None else ImageFont.truetype(face, size)


def script_fonts() -> list[str]:
    """The DejaVu faces on this machine that draw the Eastern Arabic-Indic digits; a
    machine without them fails the tests that need them (never a silent skip)."""
    found = [str(DEJAVU / f) for f in SCRIPT_FACES if (DEJAVU / f).is_file()]
    if not found:
        raise FileNotFoundError(f"no DejaVu faces in {DEJAVU}: apt-get install fonts-dejavu-core")
    return found


def render(
    digit: int,
    face: str | None,
    size: int,
    angle: float,
    rng: np.random.Generator,
    *,
    glyphs: str = "0123456789",
    slant: float = 0.0,
) -> Any:
    """One printed digit (``glyphs[digit]``): a grayscale PIL image, dark ink on a light,
    noisy page, sheared by ``slant`` (x shift per row) and turned by ``angle`` degrees."""
    font = _font(face, size)
    page = Image.new("L", (size * 2, size * 2), 235)
    draw = ImageDraw.Draw(page)
    draw.text((size, size), glyphs[digit], fill=20, font=font, anchor="mm")
    if slant:
        shear = (1.0, slant, -slant * size, 0.0, 1.0, 0.0)  # about the page's middle row
        page = page.transform(
            page.size, Image.Transform.AFFINE, shear, Image.Resampling.BILINEAR, fillcolor=235
        )
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
    glyphs: str = "0123456789",
    max_slant: float = 0.0,
    prefix: str = "p",
) -> Path:
    """``per_class`` printed images of each digit under ``root/<digit>/<prefix><i>.png``.

    Every image differs (face, size, angle, slant and noise drawn from ``seed``; a slant
    is drawn only when ``max_slant`` is not 0); ``start`` offsets the file names so a
    second call adds new files beside the first's; ``glyphs[d]`` is the digit ``d``.
    """
    rng = np.random.default_rng(seed)
    for digit in range(10):
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(start, start + per_class):
            face = faces[int(rng.integers(len(faces)))]
            size = int(sizes[int(rng.integers(len(sizes)))])
            angle = float(rng.uniform(-max_angle, max_angle))
            slant = float(rng.uniform(-max_slant, max_slant)) if max_slant else 0.0
            image = render(digit, face, size, angle, rng, glyphs=glyphs, slant=slant)
            image.save(folder / f"{prefix}{i:05d}.png")
    return root


def write_script(
    root: Path,
    per_class: int,
    *,
    seed: int = 0,
    start: int = 0,
    faces: Sequence[str] | None = None,
    sizes: Sequence[int] = (20, 26, 32, 40, 48),
    max_angle: float = 6.0,
    max_slant: float = 0.3,
) -> Path:
    """``per_class`` Eastern Arabic-Indic digits of each class under ``root/<digit>/``
    (``s<i>.png``): a face of :func:`script_fonts`, a size, a slant up to ``max_slant``
    either way (0.3: about 17 degrees), a turn up to ``max_angle`` degrees, and noise, all
    drawn from ``seed``; ``start`` offsets the names, so a second call adds new files."""
    return write_printed(
        root,
        per_class,
        seed=seed,
        faces=list(faces or script_fonts()),
        sizes=sizes,
        max_angle=max_angle,
        start=start,
        glyphs=EASTERN_ARABIC,
        max_slant=max_slant,
        prefix="s",
    )
