"""Image folders for the benchmarks: MNIST digits as users' folders hold them.

- :func:`gray_pngs`: the digits as 28×28 8-bit grayscale PNGs (MNIST written to files:
  the smallest, plainest input there is, kept for the record);
- :func:`realistic`: a mixed folder, the way people's folders of digits look: the
  transformed copies the tests use (``tests.scoring_data.TRANSFORMS``: inverted JPEG, RGB
  upscaled, RGBA strokes on a transparent canvas, an off-centre page, 16-bit PNG, palette
  BMP), plus what a scanner and a phone make: grey page scans at 300 dpi (8-bit PNG,
  ruled), bilevel TIFF scans (CCITT G4), and phone photos (12 MP RGB JPEG, uneven light,
  sensor noise), and some plain 28×28 crops. Every file is named ``<i>_<label>.<ext>``
  in a sub-folder per kind, so accuracy can be read from the rows.

The share of each kind is :data:`MIX` (per 100 files). Photos dominate the bytes and the
decoding time, as they do in a real folder that holds any.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests import scoring_data as sd  # noqa: E402  (the transforms the tests use)

Digit = NDArray[np.uint8]
Made = tuple[Image.Image, str, dict[str, Any]]


def gray_pngs(folder: Path, x: Any, y: Any, n: int) -> Path:
    """The first ``n`` digits as ``folder/<i>_<label>.png``, 28×28 8-bit grayscale."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(np.asarray(x[i])).save(folder / sd.digit_name(i, int(y[i])))
    return folder


def _ink_on_paper(d: Digit, h: int, w: int, box: int, rng: np.random.Generator) -> NDArray[Any]:
    """(h, w) float32 darkness in [0, 1]: the digit scaled to ``box`` pixels tall, placed at
    a random spot of a page (1 = ink, 0 = paper)."""
    big = Image.fromarray(d).resize((box, box), Image.Resampling.BICUBIC)
    page = np.zeros((h, w), np.float32)
    top = int(rng.integers(h // 8, h - box - h // 8))
    left = int(rng.integers(w // 8, w - box - w // 8))
    page[top : top + box, left : left + box] = np.asarray(big, np.float32) / 255
    return page


def scan_gray(d: Digit, rng: np.random.Generator) -> Made:
    """A 300-dpi grey scan of a form's box (720×560): faint ruling, pencil-grey ink."""
    ink = _ink_on_paper(d, 720, 560, 300, rng)
    paper = np.full((720, 560), 236.0, np.float32)
    paper[::48, :] = 200.0  # ruled lines
    gray = paper * (1 - ink) + 70.0 * ink + rng.normal(0, 3, paper.shape)
    return Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8)), "png", {}


def scan_bilevel(d: Digit, rng: np.random.Generator) -> Made:
    """A bilevel (1-bit) fax-style scan of a page region, 1200×900, CCITT G4 TIFF."""
    ink = _ink_on_paper(d, 1200, 900, 420, rng)
    img = Image.fromarray(((ink < 0.5) * 255).astype(np.uint8)).convert("1")
    return img, "tif", {"compression": "group4"}


def phone_photo(d: Digit, rng: np.random.Generator) -> Made:
    """A phone photo of a digit on paper: 4032×3024 RGB JPEG, light falling off across the
    page, a warm tint, blue ink, sensor noise."""
    h, w = 3024, 4032
    ink = _ink_on_paper(d, h, w, 1100, rng)
    light = (
        np.linspace(1.0, 0.7, w, dtype=np.float32)[None, :]
        * np.linspace(1.0, 0.85, h, dtype=np.float32)[:, None]
    )
    rgb = np.empty((h, w, 3), np.uint8)
    for c, (paper, pen) in enumerate(((235, 20), (228, 40), (210, 110))):
        chan = (paper * (1 - ink) + pen * ink) * light
        chan += rng.normal(0, 4, (h // 8, w // 8)).astype(np.float32).repeat(8, 0).repeat(8, 1)
        rgb[..., c] = np.clip(chan, 0, 255)
    return Image.fromarray(rgb), "jpg", {"quality": 88}


def plain_crop(d: Digit, rng: np.random.Generator) -> Made:
    """A 28×28 8-bit grayscale crop, as MNIST itself is."""
    return Image.fromarray(d), "png", {}


def _transform(fn: Callable[..., Made]) -> Callable[[Digit, np.random.Generator], Made]:
    if fn is sd.offcentre_page:
        return lambda d, rng: fn(d, int(rng.integers(0, 1000)))
    return lambda d, rng: fn(d)


KINDS: dict[str, Callable[[Digit, np.random.Generator], Made]] = {
    "plain-28x28": plain_crop,
    **{name: _transform(fn) for name, fn in sd.TRANSFORMS.items()},
    "scan-gray-300dpi": scan_gray,
    "scan-bilevel-g4": scan_bilevel,
    "phone-photo-12mp": phone_photo,
}

MIX = {  # files of each kind per 100
    "plain-28x28": 20,
    "inverted-jpeg": 12,
    "rgb-4x": 10,
    "rgba-strokes": 10,
    "offcentre-64x48": 10,
    "16bit": 8,
    "palette-bmp": 8,
    "scan-gray-300dpi": 12,
    "scan-bilevel-g4": 6,
    "phone-photo-12mp": 4,
}
assert sum(MIX.values()) == 100 and set(MIX) == set(KINDS)


def realistic(folder: Path, x: Any, y: Any, n: int, seed: int = 0) -> Path:
    """About ``n`` files in the shares of :data:`MIX`, digits drawn from ``x``/``y`` in order,
    as ``folder/<kind>/<i>_<label>.<ext>``."""
    rng = np.random.default_rng(seed)
    i = 0
    for kind, share in MIX.items():
        (folder / kind).mkdir(parents=True, exist_ok=True)
        for _ in range(max(1, round(n * share / 100))):
            img, ext, kw = KINDS[kind](np.asarray(x[i]), rng)
            img.save(folder / kind / sd.digit_name(i, int(y[i]), ext), **kw)
            i += 1
    return folder


def counts(folder: Path) -> dict[str, int]:
    """Files per kind (sub-folder) of a :func:`realistic` folder."""
    return {p.name: sum(1 for _ in p.iterdir()) for p in sorted(folder.iterdir()) if p.is_dir()}
