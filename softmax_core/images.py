"""User images → MNIST-style digits: the procedure MNIST itself was made with, on any image.

Pillow + numpy. For one image file (PNG, JPEG, BMP, GIF, TIFF, WebP; any mode)::

    open      header only; refuse more than ``max_pixels`` pixels *before* decoding
              (a 20000×20000 PNG of a few KB is a decompression bomb), first frame only,
              EXIF orientation applied (photos)
    gray      to one float channel in [0, 1]: 16-bit and 32-bit modes scaled by their
              range, palettes expanded, an alpha channel composited onto the colour
              that contrasts with the opaque strokes (black strokes on a transparent
              canvas land on white)
    polarity  the background is the median of the border ring; when it is lighter than
              the middle of the image's range the ink is dark and the image is inverted,
              so ink is bright on dark whatever the original
    stretch   background → 0, brightest ink → 1 (faded scans, JPEG grey backgrounds)
    crop      to the bounding box of the ink above ``INK_THRESHOLD`` of its maximum,
              so faint noise and JPEG ringing do not widen the box
    fit       the longer side scaled to 20 pixels keeping the aspect ratio (Pillow,
              antialiased, on float data)
    centre    pasted in 28×28 so that its centre of mass sits at (14, 14), rounded to
              whole pixels as MNIST did (its digits' mean centre of mass is (14.0, 14.0))

The result is ``(28, 28) float32`` in [0, 1], ink bright on dark, like MNIST. The
model's own recorded preprocessing (``softmax_core.preprocess.features``: scale,
deskew...) is applied after this, by the caller, exactly as at training.

On an MNIST digit written as a 28×28 grayscale PNG this is (nearly) the identity: its
ink box is already 20 pixels on the longer side, so the fit step does nothing (the
code skips the no-op resize, which is also what Pillow does) and the centre of mass
is already at (14, 14).

Every failure is an :class:`ImageError` whose ``kind`` is a short category (``empty
file``, ``unreadable``, ``not an image``, ``corrupt``, ``over pixel cap``, ``blank``)
and whose message names the problem; batch callers turn it into an error row.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import stat
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from softmax_core import settings
from softmax_core.errors import ImageError

SIDE = 28
BOX = 20  # MNIST fits the ink into a 20×20 box ...
CENTRE = 14.0  # ... and puts its centre of mass here (row, column), in 28×28
INK_THRESHOLD = 0.2  # a pixel is ink for the crop when above this fraction of the ink's max
DEFAULT_MAX_PIXELS = settings.MAX_PIXELS
JPEG_DRAFT_MIN_SIDE = 512  # JPEGs are decoded at a reduced scale while both sides stay >= this

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_EXIF_FORMATS = frozenset({"TIFF", "MPO"})  # orientation may live outside info["exif"]
_BORDER_CACHE: dict[tuple[int, int], NDArray[np.intp]] = {}

FloatImage = NDArray[np.float32]


def is_image_name(name: str) -> bool:
    """True when the file name has one of :data:`IMAGE_EXTENSIONS`, in any case."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


# --- decoding -------------------------------------------------------------------------------


def open_image(source: str | Path | IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Any:
    """Open and decode the first frame of an image, refusing more than ``max_pixels``.

    The size is read from the header and checked before any pixel is decoded. Returns a
    loaded ``PIL.Image.Image`` with its EXIF orientation applied. Raises
    :class:`ImageError` for every way a file can fail (missing, unreadable, empty, not an
    image, truncated or corrupt, over the cap).
    """
    if not isinstance(source, str | Path):
        return _decode(source, max_pixels, _size_of(source))
    try:
        # Non-blocking, so a FIFO named like an image cannot hang us; checked just below.
        fd = os.open(source, os.O_RDONLY | _O_NONBLOCK | _O_CLOEXEC)
    except PermissionError:
        raise ImageError("unreadable", "permission denied") from None
    except FileNotFoundError:
        kind = "broken symlink" if os.path.islink(source) else "file not found"
        raise ImageError("unreadable", kind) from None
    except OSError as e:
        raise ImageError("unreadable", e.strerror or str(e)) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError("unreadable", "is a directory, not an image file")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("unreadable", "not a regular file")
        fp = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fp:
        return _decode(fp, max_pixels, st.st_size)


_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _decode(fp: IO[bytes], max_pixels: int, size: int) -> Any:
    if size == 0:
        raise ImageError("empty file", "0 bytes")
    try:
        img: Any = Image.open(fp)  # the header only; Pillow refuses > 2 × MAX_IMAGE_PIXELS
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(
                "over pixel cap",
                f"image is {w}×{h} = {w * h:,} pixels, over the cap of {max_pixels:,}",
            )
        if img.format == "JPEG":
            _jpeg_draft(img)
        img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError("not an image", f"no image format recognised in {size:,} bytes") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own check, in Image.open, fires first for the very largest headers.
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        raise ImageError(
            "over pixel cap", f"image is {pixels}, over the cap of {max_pixels:,}"
        ) from None
    except MemoryError:
        raise ImageError("corrupt", "out of memory while decoding") from None
    except Exception as e:  # Pillow raises many types on malformed data; all mean "corrupt"
        raise ImageError("corrupt", f"cannot decode: {_reason(e)}") from None
    if "exif" in img.info or img.format in _EXIF_FORMATS:
        with contextlib.suppress(Exception):  # a malformed EXIF block: the pixels are fine
            img = ImageOps.exif_transpose(img)
    return img


def _jpeg_draft(img: Any) -> None:
    """Let libjpeg decode a large JPEG at 1/2, 1/4 or 1/8 scale (much faster, less memory)."""
    w, h = img.size
    scale = min(w, h) // JPEG_DRAFT_MIN_SIDE
    if scale >= 2:
        img.draft(img.mode, (w // scale, h // scale))


def _size_of(fp: IO[bytes]) -> int:
    """Size in bytes of an open file (or in-memory stream); -1 when unknown."""
    try:
        return os.fstat(fp.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        try:
            pos = fp.tell()
            size = fp.seek(0, os.SEEK_END)
            fp.seek(pos)
            return size
        except (OSError, ValueError):
            return -1


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


# --- to one channel -------------------------------------------------------------------------


def to_gray(img: Any) -> FloatImage:
    """A decoded Pillow image → (h, w) float32 in [0, 1], alpha composited.

    Any alpha (an alpha channel, or a palette / grey / RGB ``transparency`` entry) is
    composited onto white when the opaque pixels are mostly dark (black strokes on a
    transparent canvas) and onto black otherwise, so the strokes always contrast with
    what replaces the transparency.
    """
    return as_float(gray_pixels(img))


def as_float(gray: NDArray[Any]) -> FloatImage:
    """uint8 pixels → float32 in [0, 1] (x / 255); float images unchanged."""
    if gray.dtype == np.uint8:
        return gray * np.float32(1 / 255)
    return np.asarray(gray, dtype=np.float32)


def gray_pixels(img: Any) -> NDArray[Any]:
    """:func:`to_gray`, except that plain 8-bit grayscale stays uint8 (converted later,
    a whole stack at once, by :func:`normalize_stack`)."""
    mode = img.mode
    if mode == "L":
        if "transparency" not in img.info:
            w, h = img.size
            return np.frombuffer(img.tobytes(), dtype=np.uint8).reshape(h, w)
    elif mode.startswith("I;16"):
        return np.asarray(img).astype(np.float32) * np.float32(1 / 65535)
    elif mode in ("I", "F"):  # 32-bit int or float: scale by the range the data uses
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0:
            for top in (1.0, 255.0, 65535.0):
                if hi <= top:
                    return a * np.float32(1.0 / top)
        return (a - np.float32(lo)) * np.float32(1.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    if mode in _ALPHA_MODES or "transparency" in img.info:
        rgba = img.convert("RGBA")
        alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) * np.float32(1 / 255)
        gray = np.asarray(rgba.convert("L"), dtype=np.float32) * np.float32(1 / 255)
        if alpha.min() >= 1.0:
            return gray
        weight = float(alpha.sum())
        strokes_dark = weight > 0 and float((gray * alpha).sum()) / weight < 0.5
        background = np.float32(1.0 if strokes_dark else 0.0)
        return gray * alpha + background * (np.float32(1.0) - alpha)
    return np.asarray(img.convert("L"), dtype=np.float32) * np.float32(1 / 255)


# --- the MNIST procedure --------------------------------------------------------------------


def _border_index(h: int, w: int) -> NDArray[np.intp]:
    """Flat indices of the outer ring of an h×w image (cached per shape)."""
    key = (h, w)
    idx = _BORDER_CACHE.get(key)
    if idx is None:
        ring = np.zeros((h, w), dtype=bool)
        ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
        idx = np.flatnonzero(ring)
        if len(_BORDER_CACHE) < 64:
            _BORDER_CACHE[key] = idx
    return idx


def normalize(gray: NDArray[np.floating], *, resize_always: bool = False) -> FloatImage:
    """(h, w) grayscale (uint8, or floats in [0, 1]), either polarity → (28, 28) float32
    MNIST-style digit.

    ``resize_always`` sends the fit step through Pillow even when the ink box already has
    a 20-pixel longer side (a no-op there); tests use it to show the shortcut is exact.
    Raises :class:`ImageError` (``blank``) when the image has no ink.
    """
    g = np.asarray(gray)
    if g.ndim != 2 or g.size == 0:
        raise ImageError("corrupt", f"expected a 2-D image, got shape {g.shape}")
    out, errors = normalize_stack(g[None], resize_always=resize_always)
    if errors[0] is not None:
        raise errors[0]
    return out[0]


def normalize_stack(
    grays: NDArray[np.floating], *, resize_always: bool = False
) -> tuple[FloatImage, list[ImageError | None]]:
    """:func:`normalize` on k images of one shape at once: (k, h, w) → (k, 28, 28); uint8
    stacks are scaled by 1/255 first, exactly as :func:`to_gray` does.

    The statistics (range, background, polarity, ink box) are computed for the whole
    stack in a few numpy calls, which is what makes scoring folders of small images fast.
    The arithmetic is the same as one image at a time: the centres of mass are summed in
    float64, where sums of float32 pixels are exact whatever the order, so a stack and
    its images one by one give identical results. Images with no ink come back as zeros
    with an :class:`ImageError` at their index; the others with None.
    """
    g = as_float(np.asarray(grays))
    k, h, w = g.shape
    flat = g.reshape(k, h * w)
    lo = flat.min(axis=1).astype(np.float64)
    hi = flat.max(axis=1).astype(np.float64)
    border = flat[:, _border_index(h, w)]
    mid = border.shape[1] // 2
    background = np.partition(border, mid, axis=1)[:, mid]  # the border's (upper) median
    bg64 = background.astype(np.float64)
    dark = bg64 > 0.5 * (lo + hi)  # a light background: the ink is dark
    peak = np.where(dark, bg64 - lo, hi - bg64)
    has_ink = (hi - lo > 1e-6) & (peak > 1e-6)
    ink = g - background[:, None, None]
    if dark.any():
        np.negative(ink, out=ink, where=dark[:, None, None])
    mask = ink > (INK_THRESHOLD * peak).astype(np.float32)[:, None, None]
    rows = mask.any(axis=2)
    cols = mask.any(axis=1)
    r0 = rows.argmax(axis=1)
    r1 = h - rows[:, ::-1].argmax(axis=1)
    c0 = cols.argmax(axis=1)
    c1 = w - cols[:, ::-1].argmax(axis=1)
    inside = (_ramp(h)[None, :] >= r0[:, None]) & (_ramp(h)[None, :] < r1[:, None])
    inside_c = (_ramp(w)[None, :] >= c0[:, None]) & (_ramp(w)[None, :] < c1[:, None])
    # Stretch: background → 0, peak → 1; everything outside the ink box → 0.
    scale = (1.0 / np.where(has_ink, peak, 1.0)).astype(np.float32)
    np.maximum(ink, np.float32(0.0), out=ink)
    ink *= scale[:, None, None]
    ink *= inside[:, :, None]
    ink *= inside_c[:, None, :]
    # Fit: the longer side of the box to 20 pixels. Boxes already that size need no resize
    # (MNIST's own digits): their centres of mass are computed for the stack at once.
    ch, cw = r1 - r0, c1 - c0
    longer = np.maximum(ch, cw)
    fits = (longer == BOX) & has_ink & (not resize_always)
    out = np.zeros((k, SIDE, SIDE), dtype=np.float32)
    errors: list[ImageError | None] = [None] * k
    if fits.any():
        f = np.flatnonzero(fits)
        sub = ink if len(f) == k else ink[f]
        sub64 = sub.astype(np.float64)  # sums exact: see the docstring
        row_mass = sub64.sum(axis=2)
        col_mass = sub64.sum(axis=1)
        mass = row_mass.sum(axis=1)
        cy = ((_ramp(h)[None, :] - r0[f, None]) * row_mass).sum(axis=1) / mass
        cx = ((_ramp(w)[None, :] - c0[f, None]) * col_mass).sum(axis=1) / mass
        # The box's top-left goes to floor(14 - c + 0.5): shift the whole frame by that.
        dy = np.floor(CENTRE - cy + 0.5).astype(np.intp) - r0[f]
        dx = np.floor(CENTRE - cx + 0.5).astype(np.intp) - c0[f]
        out[f] = _shift(sub, dy, dx)
    for i in np.flatnonzero(~fits).tolist():
        if not has_ink[i]:
            errors[i] = ImageError(
                "blank",
                f"no ink: the whole image is one flat value ({lo[i]:.3f})"
                if hi[i] - lo[i] <= 1e-6
                else "no ink: nothing differs from the background",
            )
            continue
        crop = ink[i, r0[i] : r1[i], c0[i] : c1[i]]
        n = int(longer[i])
        th = max(1, round(int(ch[i]) * BOX / n))
        tw = max(1, round(int(cw[i]) * BOX / n))
        if (th, tw) != crop.shape or resize_always:
            crop = _resize(crop, tw, th)
        out[i] = _centre(crop)
    return out, errors


def _ramp(n: int) -> NDArray[np.float64]:
    """0, 1, ..., n-1 as float64 (pixel coordinates)."""
    if n <= _RAMP.size:
        return _RAMP[:n]
    return np.arange(n, dtype=np.float64)


_RAMP = np.arange(4096, dtype=np.float64)


def _resize(a: FloatImage, width: int, height: int) -> FloatImage:
    """Antialiased resize of a float image (Pillow 'F' mode); clipped back to [0, 1]."""
    src = Image.fromarray(np.ascontiguousarray(a, dtype=np.float32), mode="F")
    out = np.asarray(src.resize((width, height), Image.Resampling.LANCZOS), dtype=np.float32)
    return np.clip(out, 0.0, 1.0)


def _centre(crop: FloatImage) -> FloatImage:
    """Paste into 28×28 with the centre of mass at (14, 14), rounded to whole pixels."""
    h, w = crop.shape
    row_mass = crop.sum(axis=1, dtype=np.float64)
    mass = float(row_mass.sum())
    out = np.zeros((SIDE, SIDE), dtype=np.float32)
    if not mass > 0:
        return out
    cy = float(row_mass @ _ramp(h)) / mass
    cx = float(crop.sum(axis=0, dtype=np.float64) @ _ramp(w)) / mass
    _paste(out, crop, math.floor(CENTRE - cy + 0.5), math.floor(CENTRE - cx + 0.5))
    return out


def _shift(frames: FloatImage, dy: NDArray[np.intp], dx: NDArray[np.intp]) -> FloatImage:
    """(m, h, w) frames -> (m, 28, 28) with out[i, r, c] = frames[i, r - dy[i], c - dx[i]]
    (zero outside): the stack's version of :func:`_paste`, one gather for all images."""
    from numpy.lib.stride_tricks import sliding_window_view

    m, h, w = frames.shape
    if m <= 4:  # a few frames: plain slicing is cheaper than building the windows
        out = np.zeros((m, SIDE, SIDE), dtype=np.float32)
        for i, (sy, sx) in enumerate(zip(dy.tolist(), dx.tolist(), strict=True)):
            _paste(out[i], frames[i], sy, sx)
        return out
    pad = SIDE + 4  # the box's top-left lands in [-5, 14]: every window stays inside
    padded = np.zeros((m, h + 2 * pad, w + 2 * pad), dtype=np.float32)
    padded[:, pad : pad + h, pad : pad + w] = frames
    windows = sliding_window_view(padded, (SIDE, SIDE), axis=(1, 2))
    r = np.clip(pad - dy, 0, h + 2 * pad - SIDE)
    c = np.clip(pad - dx, 0, w + 2 * pad - SIDE)
    return windows[np.arange(m), r, c]


def _paste(out: FloatImage, crop: FloatImage, top: int, left: int) -> None:
    """out[top:top+h, left:left+w] = crop, clipped to out's bounds."""
    h, w = crop.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + h, SIDE), min(left + w, SIDE)
    if t1 > t0 and l1 > l0:
        out[t0:t1, l0:l1] = crop[t0 - top : t1 - top, l0 - left : l1 - left]


def read_digit(
    source: str | Path | IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> FloatImage:
    """An image file → (28, 28) float32 MNIST-style digit (see the module docstring).

    Raises :class:`ImageError` for anything that is not a readable image with ink.
    """
    img = open_image(source, max_pixels=max_pixels)
    return normalize(to_gray(img))
