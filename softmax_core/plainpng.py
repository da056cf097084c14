"""The commonest scan, read in one go: a small 8-bit grayscale PNG → its pixel bytes.

Folders of digits are mostly small grayscale PNGs (28×28 scans, crops). Pillow decodes
one in about 30 µs, more than half of it Python: ``Image.open`` probing the formats and
parsing the chunks one file read at a time, ``load()`` streaming them to the decoder and
reading the chunks after them. :func:`read_plain_gray` reads the file with one system
call, walks its chunks, checks every chunk's CRC and hands the joined image data to
Pillow's own PNG decoder (``Image.frombytes(..., "zip")``: inflate and unfilter, in C).
The pixels are the ones ``Image.open(path).tobytes()`` gives, in about half the time.

Only a file that is plainly such an image is read here::

    signature, IHDR first: 8-bit grayscale (colour type 0), not interlaced, w × h at most
    the caller's pixel limit; then IDAT chunks, one run of them; then IEND, the last
    bytes of the file; in between only chunks that carry no pixels and that Pillow reads
    without a chance of failing (plain tEXt whose keyword is neither EXIF nor
    "transparency", gAMA, cHRM, sRGB and pHYs of their full length, sBIT, bKGD, tIME);
    every CRC right

Anything else returns ``None``: other modes and depths, transparency (tRNS), palettes,
EXIF, animation, compressed text or an ICC profile (Pillow inflates those and may refuse
them), a chunk not listed, a bad CRC, truncation, a file that is not regular or over
:data:`MAX_BYTES`, an error from the decoder. The caller then decodes the file
the general way (:func:`softmax_core.images.open_image`), so every other image and
every error is exactly what it was.
"""

from __future__ import annotations

import os
import stat
import struct
import zlib

from PIL import Image

from softmax_core.images import READ_FLAGS

__all__ = ["MAX_BYTES", "read_plain_gray"]

MAX_BYTES = 1 << 16  # a 128×128 gray PNG is at most ~17 KB; larger files go the general way

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_IHDR_PLAIN_GRAY = b"\x08\x00\x00\x00\x00"  # depth 8, grey, deflate, filter 0, no interlace
# Chunks that change nothing here, with the shortest body Pillow accepts (it refuses a
# shorter gAMA, cHRM, sRGB or pHYs as truncated).
_NO_PIXELS = {b"tEXt": 0, b"tIME": 0, b"sBIT": 0, b"bKGD": 0}
_NO_PIXELS |= {b"gAMA": 4, b"cHRM": 32, b"sRGB": 1, b"pHYs": 9}
_INFO_KEYS = (b"exif", b"transparency")  # text keywords that would become image.info keys
_CHUNK_HEAD = struct.Struct(">I4s")
_SIZE = struct.Struct(">II")


def read_plain_gray(path: str, max_pixels: int) -> tuple[int, int, bytes] | None:
    """``(h, w, pixels)`` of a plain 8-bit grayscale PNG of at most ``max_pixels`` pixels
    (``h`` rows of ``w`` bytes), or ``None`` when the file is anything else (see the
    module docstring): the caller then decodes it the general way."""
    if not path.lower().endswith(".png"):
        return None
    data = _read_small(path)
    if data is None or not data.startswith(_SIGNATURE):
        return None
    try:
        return _decode(data, max_pixels)
    except Exception:  # malformed in a way the checks let through: the general path says how
        return None


def _read_small(path: str) -> bytes | None:
    """The bytes of a regular file of at most MAX_BYTES, read in one call; else None."""
    try:
        fd = os.open(path, READ_FLAGS)  # non-blocking: a FIFO named x.png cannot hang us
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return None
        data = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) == st.st_size else None  # changed while read: not plainly


def _decode(data: bytes, max_pixels: int) -> tuple[int, int, bytes] | None:
    view = memoryview(data)
    end = len(data)
    pos = len(_SIGNATURE)
    idat: list[memoryview] = []
    first, idat_done = True, False
    while pos + 12 <= end:
        length, cid = _CHUNK_HEAD.unpack_from(data, pos)
        body = pos + 8
        after = body + length
        if after + 4 > end or zlib.crc32(view[pos + 4 : after]) != _crc_at(data, after):
            return None
        if first:
            if cid != b"IHDR" or length != 13 or data[body + 8 : body + 13] != _IHDR_PLAIN_GRAY:
                return None
            w, h = _SIZE.unpack_from(data, body)
            if not (w > 0 and h > 0 and w * h <= max_pixels):
                return None
            first = False
        elif cid == b"IDAT":
            if idat_done:
                return None  # a second run of image data: not a plain PNG
            idat.append(view[body:after])
            pos = after + 4
            continue
        elif cid == b"IEND":
            if not idat or after + 4 != end:
                return None
            img = Image.frombytes("L", (w, h), b"".join(idat), "zip", "L")
            return h, w, img.tobytes()
        else:
            shortest = _NO_PIXELS.get(cid)
            if shortest is None or length < shortest:
                return None  # pixels, transparency, a chunk we do not know, too short
            if cid == b"tEXt" and _info_key(view, body):
                return None  # would be EXIF data (an orientation) or a transparency
        idat_done = bool(idat)  # the image data, if begun, is over
        pos = after + 4
    return None  # truncated: no IEND


def _crc_at(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def _info_key(view: memoryview, body: int) -> bool:
    """Whether a tEXt chunk's keyword (the bytes before its NUL) could stand for EXIF data
    or transparency in Pillow's ``image.info``, in any case."""
    keyword = bytes(view[body : body + 80]).split(b"\0", 1)[0].lower()
    return any(key in keyword for key in _INFO_KEYS)
