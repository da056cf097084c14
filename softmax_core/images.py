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

The procedure itself (polarity ... centre) is :mod:`softmax_core.normalize`; this module
decodes and turns any mode into one channel.

Every failure is an :class:`ImageError` whose ``kind`` is a short category (``empty
file``, ``unreadable``, ``not an image``, ``corrupt``, ``over pixel cap`` (over
``max_pixels``), ``over Pillow's pixel cap`` (over ``settings.PIXEL_CEILING``: Pillow will
not open it, whatever ``max_pixels`` says), ``over size cap`` (:func:`open_regular`, for callers that read whole files), ``blank``)
and whose message names the problem; batch callers turn it into an error row.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import stat
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from softmax_core import settings
from softmax_core.errors import OVER_PILLOW_CAP, OVER_PIXEL_CAP, ImageError
from softmax_core.normalize import (
    FloatImage,
    as_float,
    normalize,
)
from softmax_core.words import plural

Image.MAX_IMAGE_PIXELS = settings.PIXEL_CEILING // 2  # Image.open refuses twice this

__all__ = [
    "IMAGE_EXTENSIONS",
    "READ_FLAGS",
    "ImageError",
    "gray_pixels",
    "is_image_name",
    "is_plain_gray",
    "open_image",
    "open_regular",
    "read_digit",
    "to_gray",
]

DEFAULT_MAX_PIXELS = settings.MAX_PIXELS
JPEG_DRAFT_MIN_SIDE = 512  # JPEGs are decoded at a reduced scale while both sides stay >= this

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})

_ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "La", "RGBa"})
_EXIF_FORMATS = frozenset({"TIFF", "MPO"})  # orientation may live outside info["exif"]


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
    fp, size = open_regular(source)
    with fp:
        return _decode(fp, max_pixels, size)


def open_regular(
    path: str | Path, *, max_bytes: int | None = None
) -> tuple[io.BufferedReader, int]:
    """``(binary file, size in bytes)`` of a regular file, opened so that nothing else can
    hang or flood the reader: non-blocking (a FIFO named like an image returns at once),
    then refused unless it is a regular file (a FIFO, a socket, a device such as a symlink
    to ``/dev/zero``), and refused when over ``max_bytes`` (if given), before any read.

    Raises :class:`ImageError` (``unreadable``: missing, broken symlink, a symlink loop,
    permission, not a regular file; ``over size cap``) for every way it can fail.
    """
    try:
        fd = os.open(path, READ_FLAGS)
    except PermissionError:
        raise ImageError("unreadable", "permission denied") from None
    except FileNotFoundError:
        kind = BROKEN_LINK if os.path.islink(path) else "file not found"
        raise ImageError("unreadable", kind) from None
    except OSError as e:
        raise ImageError(
            "unreadable", LOOPED_LINK if e.errno == errno.ELOOP else e.strerror or str(e)
        ) from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise ImageError("unreadable", "is a directory, not an image file")
        if not stat.S_ISREG(st.st_mode):
            raise ImageError("unreadable", "not a regular file")
        if max_bytes is not None and st.st_size > max_bytes:
            raise ImageError(
                "over size cap", f"{st.st_size:,} bytes, over the cap of {max_bytes:,}"
            )
        return os.fdopen(fd, "rb"), st.st_size
    except BaseException:
        os.close(fd)
        raise


# Why a symlink named like an image cannot be read: its target is missing, or it leads back
# to itself (the reasons of score's rows and of `dataset add`, one wording).
BROKEN_LINK = "broken symlink"
LOOPED_LINK = "symlink loop"

# How image files are opened: read-only, non-blocking (a FIFO named like an image cannot
# hang a read; callers check for a regular file), not inherited by child processes.
READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def _decode(fp: IO[bytes], max_pixels: int, size: int) -> Any:
    if size == 0:
        raise ImageError("empty file", "0 bytes")
    try:
        img: Any = Image.open(fp)  # the header only; Pillow refuses > settings.PIXEL_CEILING
        w, h = img.size
        if w * h > max_pixels:
            raise ImageError(
                OVER_PIXEL_CAP,
                f"image is {w}×{h} = {w * h:,} pixels, over the cap of {max_pixels:,}",
            )
        if img.format == "JPEG":
            _jpeg_draft(img)
        img.load()
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(
            "not an image", f"no image format recognised in {size:,} {plural(size, 'byte')}"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        # Pillow's own check, in Image.open, fires first for the very largest headers.
        found = re.search(r"\((\d+) pixels\)", str(e))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        # A kind of its own: no --max-pixels lets it through (score's hint is for the others)
        ceiling = settings.PIXEL_CEILING
        cap = (
            f"Pillow's own cap of {ceiling:,} (a --max-pixels above it has no effect)"
            if max_pixels >= ceiling
            else f"the cap of {max_pixels:,} and Pillow's own of {ceiling:,}"
        )
        raise ImageError(OVER_PILLOW_CAP, f"image is {pixels}, over {cap}") from None
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


def is_plain_gray(img: Any) -> bool:
    """True for 8-bit grayscale with no transparency: :func:`gray_pixels` of it is just
    ``img.tobytes()`` as uint8 (``h`` rows of ``w``), so batch callers may stack the bytes."""
    return bool(img.mode == "L" and "transparency" not in img.info)


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
        if not np.isfinite(a).all():
            raise ImageError("corrupt", "non-finite pixel values (NaN or infinity)")
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
        result: NDArray[Any] = gray * alpha + background * (np.float32(1.0) - alpha)
        return result
    return np.asarray(img.convert("L"), dtype=np.float32) * np.float32(1 / 255)


def read_digit(
    source: str | Path | IO[bytes], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> FloatImage:
    """An image file → (28, 28) float32 MNIST-style digit (see the module docstring).

    Raises :class:`ImageError` for anything that is not a readable image with ink.
    """
    img = open_image(source, max_pixels=max_pixels)
    return normalize(to_gray(img))
