"""The plain-PNG reader: Pillow's pixels where it reads a file, None for anything else."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from softmax_core import plainpng

LIMIT = 128 * 128


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, body) pairs."""
    out, pos = [], 8
    while pos < len(data):
        length, cid = struct.unpack_from(">I4s", data, pos)
        out.append((cid, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """PNG bytes from (type, body) pairs, every CRC right."""
    parts = [b"\x89PNG\r\n\x1a\n"]
    for cid, body in chunks:
        crc = zlib.crc32(cid + body)
        parts.append(struct.pack(">I4s", len(body), cid) + body + struct.pack(">I", crc))
    return b"".join(parts)


def _saved(a: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", **save)
    return buf.getvalue()


def _write(tmp_path: Path, data: bytes, name: str = "x.png") -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def gray() -> np.ndarray:
    rng = np.random.default_rng(0)
    a = np.zeros((28, 28), dtype=np.uint8)
    a[5:23, 8:20] = rng.integers(0, 256, size=(18, 12), dtype=np.uint8)
    return a


@pytest.mark.parametrize("shape", [(28, 28), (1, 1), (1, 57), (40, 3), (128, 128)])
@pytest.mark.parametrize("save", [{}, {"compress_level": 0}, {"optimize": True}])
def test_the_pixels_are_pillows(tmp_path: Path, shape: tuple[int, int], save: dict) -> None:
    a = np.random.default_rng(sum(shape)).integers(0, 256, size=shape, dtype=np.uint8)
    path = _write(tmp_path, _saved(a, **save))
    with Image.open(path) as im:
        expected = im.tobytes()
    assert plainpng.read_plain_gray(path, LIMIT) == (*shape, expected)
    assert expected == a.tobytes()


def test_every_png_filter_and_split_image_data_read_like_pillow(tmp_path: Path) -> None:
    """Rows with each of the five filters (None, Sub, Up, Average, Paeth), the data cut
    into several IDAT chunks, and metadata chunks around them."""
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, size=(20, 9), dtype=np.uint8)
    rows, prev = [], np.zeros(9, dtype=np.int64)
    for r, row in enumerate(a.astype(np.int64)):
        f = r % 5
        left = np.concatenate([[0], row[:-1]])
        up_left = np.concatenate([[0], prev[:-1]])
        if f == 0:
            enc = row
        elif f == 1:
            enc = row - left
        elif f == 2:
            enc = row - prev
        elif f == 3:
            enc = row - (left + prev) // 2
        else:
            p = left + prev - up_left
            pa, pb, pc = abs(p - left), abs(p - prev), abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prev, up_left))
            enc = row - pred
        rows.append(bytes([f]) + (enc % 256).astype(np.uint8).tobytes())
        prev = row
    stream = zlib.compress(b"".join(rows))
    ihdr = struct.pack(">IIBBBBB", 9, 20, 8, 0, 0, 0, 0)
    thirds = [stream[: len(stream) // 3], stream[len(stream) // 3 : -5], stream[-5:]]
    data = _png(
        [(b"IHDR", ihdr), (b"gAMA", struct.pack(">I", 45455)), (b"tEXt", b"Title\0seven")]
        + [(b"IDAT", t) for t in thirds]
        + [(b"tIME", bytes(7)), (b"IEND", b"")]
    )
    path = _write(tmp_path, data)
    with Image.open(path) as im:
        assert im.tobytes() == a.tobytes()
    assert plainpng.read_plain_gray(path, LIMIT) == (20, 9, a.tobytes())


def _variants(gray: np.ndarray) -> dict[str, bytes]:
    """Files the reader must leave to the general path, each one change from a plain one."""
    plain = _saved(gray)
    chunks = _chunks(plain)
    ihdr, idat = chunks[0][1], chunks[1][1]

    def with_ihdr(**byte: int) -> bytes:
        b = bytearray(ihdr)
        for name, value in byte.items():
            b[{"depth": 8, "colour": 9, "interlace": 12}[name]] = value
        return _png([(b"IHDR", bytes(b)), *chunks[1:]])

    info = PngImagePlugin.PngInfo()
    info.add_text("exif", "not really")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotated
    bad_crc = bytearray(plain)
    bad_crc[-20] ^= 1  # inside the IDAT body
    return {
        "rgb": _saved(np.stack([gray] * 3, axis=-1)),
        "sixteen bit": _saved(gray.astype(np.uint16) * 257),
        "palette": _palette(gray),
        "transparency": _saved(gray, transparency=0),
        "exif chunk": _saved(gray, exif=exif.tobytes()),
        "exif text": _saved(gray, pnginfo=info),
        "interlaced": with_ihdr(interlace=1),
        "colour type": with_ihdr(colour=4),
        "depth": with_ihdr(depth=16),
        "unknown chunk": _png([chunks[0], (b"abCd", b"x"), *chunks[1:]]),
        "short gAMA": _png([chunks[0], (b"gAMA", b"\0\1"), *chunks[1:]]),
        "short pHYs": _png([chunks[0], (b"pHYs", bytes(8)), *chunks[1:]]),
        "ICC profile": _saved(gray, icc_profile=b"not a real profile"),
        "compressed text": _png(
            [chunks[0], (b"zTXt", b"k\0\0" + zlib.compress(b"v")), *chunks[1:]]
        ),
        "international text": _png([chunks[0], (b"iTXt", b"k\0\0\0\0\0v"), *chunks[1:]]),
        "text named transparency": _png(
            [chunks[0], (b"tEXt", b"transparency\0" + b"0"), *chunks[1:]]
        ),
        "text named EXIF after the data": _png(
            [*chunks[:2], (b"tEXt", b"Raw profile type exif\0x"), chunks[2]]
        ),
        "image data split by a chunk": _png(
            [chunks[0], (b"IDAT", idat[:10]), (b"tEXt", b"a\0b"), (b"IDAT", idat[10:]), *chunks[2:]]
        ),
        "second IHDR": _png([chunks[0], *chunks]),
        "no IHDR first": _png([chunks[1], chunks[0], *chunks[2:]]),
        "bad CRC": bytes(bad_crc),
        "truncated": plain[:-20],
        "no IEND": _png(chunks[:2]),
        "bytes after IEND": plain + b"junk",
        "bad image data": _png([chunks[0], (b"IDAT", b"not deflate"), chunks[-1]]),
        "bad filter type": _png([chunks[0], (b"IDAT", zlib.compress(b"\5" * 29 * 28)), chunks[-1]]),
        "cut deflate stream": _png([chunks[0], (b"IDAT", idat[:-6]), chunks[-1]]),
        "signature only": plain[:8],
        "empty": b"",
        "jpeg": _jpeg(gray),
    }


def _palette(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).convert("P").save(buf, format="PNG")
    return buf.getvalue()


def _jpeg(gray: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gray).save(buf, format="JPEG")
    return buf.getvalue()


def test_anything_not_plainly_a_small_gray_png_is_left_to_the_general_path(
    tmp_path: Path, gray: np.ndarray
) -> None:
    assert plainpng.read_plain_gray(_write(tmp_path, _saved(gray)), LIMIT) is not None
    for name, data in _variants(gray).items():
        path = _write(tmp_path, data, name.replace(" ", "_") + ".png")
        assert plainpng.read_plain_gray(path, LIMIT) is None, name


def test_what_it_leaves_alone_pillow_reads_as_before(tmp_path: Path, gray: np.ndarray) -> None:
    """The general path's view of the same files: a short gAMA or pHYs is Pillow's error,
    the text keys land in ``info`` (so they could change how the image is read)."""
    variants = _variants(gray)
    for name in ("short gAMA", "short pHYs"):
        with pytest.raises(ValueError, match="Truncated"):
            Image.open(io.BytesIO(variants[name]))
    with Image.open(io.BytesIO(variants["text named transparency"])) as im:
        assert "transparency" in im.info
    with Image.open(io.BytesIO(variants["exif text"])) as im:
        assert "exif" in im.info


def test_size_limits_names_and_special_files(tmp_path: Path, gray: np.ndarray) -> None:
    data = _saved(gray)
    path = _write(tmp_path, data)
    assert plainpng.read_plain_gray(path, 28 * 28) is not None
    assert plainpng.read_plain_gray(path, 28 * 28 - 1) is None  # over the caller's limit
    assert plainpng.read_plain_gray(_write(tmp_path, data, "X.PNG"), LIMIT) is not None
    for name in ("x.jpg", "x.png.bak", "png"):
        assert plainpng.read_plain_gray(_write(tmp_path, data, name), LIMIT) is None, name
    big = _png(
        [*_chunks(data)[:-1], (b"tEXt", b"pad\0" + bytes(plainpng.MAX_BYTES)), (b"IEND", b"")]
    )
    assert plainpng.read_plain_gray(_write(tmp_path, big, "big.png"), LIMIT) is None
    assert plainpng.read_plain_gray(str(tmp_path / "missing.png"), LIMIT) is None
    (tmp_path / "dir.png").mkdir()
    assert plainpng.read_plain_gray(str(tmp_path / "dir.png"), LIMIT) is None
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # nobody writes to it: a blocking open would hang here
    assert plainpng.read_plain_gray(str(fifo), LIMIT) is None


def test_where_it_reads_an_odd_file_it_agrees_with_pillow(tmp_path: Path, gray: np.ndarray) -> None:
    """Image data that ends early (Pillow fills the rest with zeros), runs on past the
    last row, or is followed by bytes after the deflate stream: Pillow's bytes."""
    ihdr = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)
    rows = b"".join(b"\2" + bytes(r) for r in gray)
    for body in (
        zlib.compress(b"\0" + bytes(range(28))),
        zlib.compress(rows + b"\0" * 290),
        zlib.compress(rows) + b"trailing",
    ):
        path = _write(tmp_path, _png([(b"IHDR", ihdr), (b"IDAT", body), (b"IEND", b"")]))
        with Image.open(path) as im:
            expected = im.tobytes()
        assert plainpng.read_plain_gray(path, LIMIT) == (28, 28, expected)
