"""Test data for scoring, built from the real MNIST test digits (shared by several test files).

- ``write_pngs``: digits as 28×28 grayscale PNGs named ``<index>_<label>.png``, spread
  over sub-folders of 1000 (so the walk recurses);
- ``write_transformed``: the same digits the way users' folders hold them (inverted
  JPEG, RGB upscaled 4×, RGBA strokes on a transparent canvas, off-centre on a 64×48
  page, 16-bit PNG, palette BMP), named ``<transform>/<index>_<label>.<ext>``;
- ``write_broken``: every bad-input case of the scoring issue, with the error kind each
  must produce;
- ``trained_model``: a model trained on the real training split (seed 0), as a file.

Everything is built once per session (module-level cache keyed by the session's temp
folder), whichever test file asks first.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from softmax_core.mnist import Dataset, load_mnist
from softmax_core.model import Model
from softmax_core.requests import Hyper

_CACHE: dict[str, Any] = {}

Digit = NDArray[np.uint8]


def _once(key: str, build: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def mnist(mnist_dir: Path, session_cache: Path) -> Dataset:
    return _once("mnist", lambda: load_mnist(str(mnist_dir), cache_dir=session_cache))  # type: ignore[no-any-return]


def trained_model(mnist_dir: Path, session_cache: Path, factory: pytest.TempPathFactory) -> Path:
    """A model trained on all 60,000 training digits (the default features, seed 0)."""

    def build() -> Path:
        from softmax_core.train import evaluate, train

        ds = mnist(mnist_dir, session_cache)
        model = train(ds, Hyper(seed=0))
        metrics = {"accuracy": evaluate(model, ds).accuracy}
        model = model.evolve(info=dataclasses.replace(model.info, metrics=metrics))
        return model.save(factory.mktemp("model") / "model.npz")

    return _once("model", build)  # type: ignore[no-any-return]


def in_memory_accuracy(model_path: Path, ds: Dataset, n: int | None = None) -> float:
    """Accuracy of the model on the first n test digits, straight from the arrays."""
    x, y = ds.x_test[:n], ds.y_test[:n]
    return float(np.mean(Model.load(model_path).predict(np.asarray(x)) == y))


# --- writing digits -------------------------------------------------------------------------


def digit_name(i: int, label: int, ext: str = "png") -> str:
    return f"{i:05d}_{label}.{ext}"


def label_of(rel: str) -> int:
    """The true label encoded in a fixture's file name."""
    return int(Path(rel).stem.rsplit("_", 1)[1])


def write_pngs(folder: Path, x: NDArray[np.uint8], y: NDArray[np.uint8]) -> Path:
    """Digit i as ``folder/<i // 1000>/<i>_<label>.png`` (28×28 grayscale)."""
    for i, (d, label) in enumerate(zip(x, y, strict=True)):
        sub = folder / str(i // 1000)
        if i % 1000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(d)).save(sub / digit_name(i, int(label)))
    return folder


def inverted_jpeg(d: Digit) -> tuple[Image.Image, str, dict[str, Any]]:
    """Dark ink on white, JPEG (lossy)."""
    return Image.fromarray(255 - d), "jpg", {"quality": 90}


def rgb_4x(d: Digit) -> tuple[Image.Image, str, dict[str, Any]]:
    """Warm ink on a dark blue background, RGB, upscaled 4× (112×112)."""
    a = (d.astype(np.float32) / 255)[..., None]
    rgb = np.array([10, 20, 60], np.float32) * (1 - a) + np.array([255, 220, 120], np.float32) * a
    img = Image.fromarray(rgb.round().astype(np.uint8), mode="RGB")
    return img.resize((112, 112), Image.Resampling.BICUBIC), "png", {}


def rgba_strokes(d: Digit) -> tuple[Image.Image, str, dict[str, Any]]:
    """Black strokes on a transparent canvas (a drawing app's export): alpha is the ink."""
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = d
    return Image.fromarray(rgba, mode="RGBA"), "png", {}


def offcentre_page(d: Digit, i: int = 0) -> tuple[Image.Image, str, dict[str, Any]]:
    """Dark ink on a white 64×48 page, the digit off-centre (position varies with i)."""
    page = np.zeros((48, 64), np.uint8)
    top, left = 2 + (i * 5) % 18, 2 + (i * 7) % 34
    page[top : top + 28, left : left + 28] = d
    return Image.fromarray(255 - page), "png", {}


def png_16bit(d: Digit) -> tuple[Image.Image, str, dict[str, Any]]:
    """16-bit grayscale PNG (values 0..65535)."""
    return Image.fromarray(d.astype(np.uint16) * 257), "png", {}


def palette_bmp(d: Digit) -> tuple[Image.Image, str, dict[str, Any]]:
    """Dark ink on white, quantised to a 16-colour palette, saved as an 8-bit BMP."""
    rgb = Image.fromarray(255 - d).convert("RGB")
    return rgb.quantize(colors=16), "bmp", {}


TRANSFORMS: dict[str, Callable[..., tuple[Image.Image, str, dict[str, Any]]]] = {
    "inverted-jpeg": inverted_jpeg,
    "rgb-4x": rgb_4x,
    "rgba-strokes": rgba_strokes,
    "offcentre-64x48": offcentre_page,
    "16bit": png_16bit,
    "palette-bmp": palette_bmp,
}


def write_transformed(
    folder: Path, x: NDArray[np.uint8], y: NDArray[np.uint8], indices: Iterable[int]
) -> Path:
    """``folder/<transform>/<i>_<label>.<ext>`` for every transform and index."""
    for name, fn in TRANSFORMS.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in indices:
            d = np.asarray(x[i])
            img, ext, kw = fn(d, i) if fn is offcentre_page else fn(d)
            img.save(folder / name / digit_name(i, int(y[i]), ext), **kw)
    return folder


# --- broken files ---------------------------------------------------------------------------


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A valid 1-bit PNG of width×height black pixels: tens of KB that decode to 400 MP."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    z = zlib.compressobj(9)
    row = b"\0" * (1 + (width + 7) // 8)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def png_bytes(d: Digit) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(d).save(buf, format="PNG")
    return buf.getvalue()


BROKEN_KINDS = {  # file name in write_broken's folder -> the error kind its row must carry
    "blank.png": "blank",
    "bomb.png": "over Pillow's pixel cap",  # 400 MP: over Pillow's own 179 MP
    "dangling.png": "unreadable",
    "empty.png": "empty file",
    "notes.jpg": "not an image",
    "pipe.png": "unreadable",
    "truncated.png": "corrupt",
}


def write_broken(folder: Path, good: Digit) -> dict[str, str]:
    """Every bad-input case of the issue (zero bytes, truncated, text with an image
    extension, unreadable: a dangling symlink and a FIFO, a decompression bomb) plus a
    blank page; returns :data:`BROKEN_KINDS`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = png_bytes(good)
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    (folder / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    os.symlink(folder / "gone.png", folder / "dangling.png")
    os.mkfifo(folder / "pipe.png")
    (folder / "bomb.png").write_bytes(bomb_png())
    (folder / "blank.png").write_bytes(png_bytes(np.full((28, 28), 255, np.uint8)))
    return dict(BROKEN_KINDS)


# --- reading the output ---------------------------------------------------------------------


def read_rows(text: str, fmt: str = "csv") -> list[dict[str, Any]]:
    if fmt == "csv":
        return list(csv.DictReader(io.StringIO(text)))
    return [json.loads(line) for line in text.splitlines()]


def accuracy(rows: list[dict[str, Any]]) -> float:
    """Share of rows whose predicted label is the one in the file name (errors count wrong)."""
    hits = [r["status"] == "ok" and int(r["label"]) == label_of(r["path"]) for r in rows]
    return float(np.mean(hits))
