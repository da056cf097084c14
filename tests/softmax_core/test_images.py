"""softmax_core.images: the MNIST procedure on real MNIST digits in every shape users have."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from softmax_core import images
from softmax_core.errors import ImageError
from softmax_core.images import read_digit
from softmax_core.mnist import Dataset
from softmax_core.model import Model
from softmax_core.normalize import normalize, normalize_stack
from softmax_core.preprocess import Steps
from tests import scoring_data as sd

N = 1000  # test digits for the per-image checks


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return sd.mnist(mnist_dir, session_cache)


@pytest.fixture(scope="module")
def digits(ds: Dataset) -> np.ndarray:
    return np.asarray(ds.x_test[:N])


@pytest.fixture(scope="module")
def model_path(
    mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return sd.trained_model(mnist_dir, session_cache, tmp_path_factory)


def save(img: Image.Image, path: Path, **kw: object) -> Path:
    img.save(path, **kw)  # type: ignore[arg-type]
    return path


def as_float(d: np.ndarray) -> np.ndarray:
    return d.astype(np.float32) * np.float32(1 / 255)


# --- MNIST itself: the procedure is (nearly) the identity ----------------------------------


def test_mnist_digits_keep_their_accuracy(
    ds: Dataset, digits: np.ndarray, model_path: Path
) -> None:
    """28×28 PNGs of MNIST digits through read_digit score like the arrays themselves."""
    model = Model.load(model_path)
    out = np.stack([read_digit(io.BytesIO(sd.png_bytes(d))) for d in digits])
    assert out.shape == (N, 28, 28) and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() == 1.0
    pred = model.predict(out)
    ours = float(np.mean(pred == ds.y_test[:N]))
    assert abs(ours - sd.in_memory_accuracy(model_path, ds, N)) <= 0.003
    # Most digits come back unchanged: ink box already 20 px, centre of mass at (14, 14).
    same = np.abs(out - as_float(digits)).max(axis=(1, 2)) < 0.01
    assert same.mean() > 0.6


def test_the_centre_of_mass_lands_on_14_14(digits: np.ndarray) -> None:
    g = np.arange(28)
    for d in digits[:200]:
        out = normalize(as_float(d))
        m = out.sum()
        assert abs(out.sum(axis=1) @ g / m - 14.0) <= 0.5
        assert abs(out.sum(axis=0) @ g / m - 14.0) <= 0.5
        rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
        assert max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1 <= 21  # the 20-box (+ rounding)


def test_a_stack_is_identical_to_one_image_at_a_time(digits: np.ndarray) -> None:
    """The vectorised path for same-size images changes nothing, bit for bit: MNIST digits
    (no resize), plus digits that need a resize or inversion and a blank, in one stack."""
    grays = as_float(digits).copy()
    grays[3] = 1.0 - grays[3]  # dark ink on light
    grays[5] = np.zeros((28, 28), np.float32)  # blank
    small = np.zeros((28, 28), np.float32)
    small[10:18, 12:16] = as_float(digits[7])[4:24:2, 4:24:2][:8, :4]  # a box far from 20
    grays[7] = small
    stacked, errors = normalize_stack(grays)
    assert [i for i, e in enumerate(errors) if e is not None] == [5]
    assert errors[5] is not None and errors[5].kind == "blank"
    for i, g in enumerate(grays):
        if i == 5:
            with pytest.raises(ImageError, match="blank"):
                normalize(g)
            continue
        assert np.array_equal(normalize(g), stacked[i]), f"image {i} differs"


def test_the_no_resize_shortcut_is_exact(digits: np.ndarray) -> None:
    """A 20-pixel box skips Pillow's resize; forcing it through Pillow gives the same pixels."""
    for d in digits[:300]:
        g = as_float(d)
        assert np.array_equal(normalize(g), normalize(g, resize_always=True))


# --- every shape users have --------------------------------------------------------------


def _base(d: np.ndarray) -> np.ndarray:
    return normalize(as_float(d))


@pytest.mark.parametrize(
    "make",
    [sd.png_16bit, sd.rgba_strokes, sd.offcentre_page],
    ids=["16bit", "rgba-strokes", "offcentre-64x48"],
)
def test_lossless_variants_give_the_same_digit(
    make: object, digits: np.ndarray, tmp_path: Path
) -> None:
    """Polarity, alpha, bit depth, palettes and position do not change the result."""
    for i, d in enumerate(digits[:40]):
        img, ext, kw = make(d)  # type: ignore[operator]
        path = save(img, tmp_path / f"{i}.{ext}", **kw)
        np.testing.assert_allclose(read_digit(path), _base(d), atol=2e-6)


@pytest.mark.parametrize(
    "make",
    [sd.inverted_jpeg, sd.rgb_4x, sd.palette_bmp],
    ids=["inverted-jpeg", "rgb-4x", "palette-bmp-16-colours"],
)
def test_lossy_variants_give_nearly_the_same_features(
    make: object, digits: np.ndarray, tmp_path: Path
) -> None:
    """JPEG, resampling and 16-colour palettes blur a little: what the model sees (deskewed
    features, which also absorb a one-pixel difference in rounding the centre) stays put."""
    steps = Steps.named("deskew")
    for i, d in enumerate(digits[:40]):
        img, ext, kw = make(d)  # type: ignore[operator]
        out = read_digit(save(img, tmp_path / f"{i}.{ext}", **kw))
        ours, base = steps.features(np.stack([out, _base(d)]))
        assert np.corrcoef(ours, base)[0, 1] > 0.95, i


def test_photo_of_paper_dark_ink_noisy_background(
    ds: Dataset, model_path: Path, tmp_path: Path
) -> None:
    """Grey paper with noise and a lighting gradient, dark ink, 3× larger, JPEG: still read."""
    model = Model.load(model_path)
    rng = np.random.default_rng(0)
    n = 200
    outs = []
    for i in range(n):
        ink = np.asarray(Image.fromarray(ds.x_test[i]).resize((84, 84), Image.Resampling.BICUBIC))
        a = ink.astype(np.float32) / 255
        yy, xx = np.mgrid[0:120, 0:100]
        paper = 205 + 25 * (xx / 100) - 10 * (yy / 120) + rng.normal(0, 6, (120, 100))
        page = paper.copy()
        page[18:102, 8:92] = paper[18:102, 8:92] * (1 - a) + 35 * a
        path = save(
            Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)),
            tmp_path / f"{i}.jpg",
            quality=80,
        )
        outs.append(read_digit(path))
    pred = model.predict(np.stack(outs))
    assert np.mean(pred == ds.y_test[:n]) >= 0.9


def test_gif_first_frame_is_used(digits: np.ndarray, tmp_path: Path) -> None:
    frames = [Image.fromarray(digits[0]), Image.fromarray(digits[1])]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    np.testing.assert_allclose(read_digit(path), _base(digits[0]), atol=2e-6)


def test_exif_orientation_is_applied(digits: np.ndarray, tmp_path: Path) -> None:
    """A phone stores pixels sideways with Orientation=6 ('rotate 90° clockwise to view')."""
    d = digits[2]
    stored = Image.fromarray(np.rot90(d, 1).copy())  # what the sensor wrote
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.png"
    stored.save(path, exif=exif)
    np.testing.assert_allclose(read_digit(path), _base(d), atol=2e-6)
    assert not np.allclose(normalize(as_float(np.rot90(d, 1))), _base(d), atol=0.1)


def test_non_square_and_tiny_inputs(tmp_path: Path) -> None:
    wide = np.zeros((10, 300), np.uint8)
    wide[4:6, 20:280] = 255  # a long stroke: fitted to 20 wide, 1+ high, centred
    out = read_digit(save(Image.fromarray(wide), tmp_path / "wide.png"))
    cols = np.flatnonzero(out.any(axis=0))
    assert cols[-1] - cols[0] + 1 == 20
    dot = np.zeros((5, 5), np.uint8)
    dot[2, 2] = 255
    out = read_digit(save(Image.fromarray(dot), tmp_path / "dot.png"))
    assert out.shape == (28, 28) and out.max() == 1.0


# --- failures: every one is an ImageError with a kind ----------------------------------------


def test_broken_files_raise_image_errors_with_their_kind(
    digits: np.ndarray, tmp_path: Path
) -> None:
    expected = sd.write_broken(tmp_path / "bad", digits[0])
    for name, kind in expected.items():
        with pytest.raises(ImageError) as info:
            read_digit(tmp_path / "bad" / name)
        assert info.value.kind == kind, name
        assert str(info.value).startswith(kind + ": ")
    with pytest.raises(ImageError, match="unreadable: not a regular file"):
        read_digit(tmp_path / "bad" / "pipe.png")  # a FIFO: refused, never waited on
    with pytest.raises(ImageError, match="unreadable: broken symlink"):
        read_digit(tmp_path / "bad" / "dangling.png")
    with pytest.raises(ImageError, match="empty file: 0 bytes"):
        read_digit(io.BytesIO(b""))


def test_the_pixel_cap_is_checked_before_decoding(tmp_path: Path) -> None:
    """The bomb is refused from its header; a small image over a small cap names both sizes."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(sd.bomb_png())
    assert bomb.stat().st_size < 100_000
    with pytest.raises(ImageError, match=r"over Pillow's pixel cap: image is 400,000,000 pixels"):
        read_digit(bomb)
    medium = tmp_path / "medium.png"
    medium.write_bytes(sd.bomb_png(5000, 4000))  # under Pillow's own limit: our check alone
    with pytest.raises(
        ImageError, match="image is 5000×4000 = 20,000,000 pixels, over the cap of 16,777,216"
    ):
        read_digit(medium)
    small = save(Image.fromarray(np.zeros((28, 28), np.uint8)), tmp_path / "s.png")
    with pytest.raises(ImageError, match="28×28 = 784 pixels, over the cap of 100"):
        read_digit(small, max_pixels=100)
    # a cap above Pillow's own: Pillow refuses first, and the message says whose cap it was
    with pytest.raises(
        ImageError,
        match=r"400,000,000 pixels, over Pillow's own cap of 178,956,970 \(a --max-pixels above",
    ):
        read_digit(bomb, max_pixels=10**9)
    with pytest.raises(ImageError, match="400,000,000 pixels, over the cap of 16,777,216"):
        read_digit(bomb)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="unreadable: file not found"):
        read_digit(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="unreadable: is a directory"):
        read_digit(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    path = save(Image.fromarray(np.eye(28, dtype=np.uint8) * 255), tmp_path / "locked.png")
    os.chmod(path, 0)
    try:
        if os.access(path, os.R_OK):  # root reads anything: then it must score normally
            assert read_digit(path).shape == (28, 28)
        else:
            with pytest.raises(ImageError, match="unreadable: permission denied"):
                read_digit(path)
    finally:
        os.chmod(path, 0o644)


def test_blank_images_are_errors() -> None:
    with pytest.raises(ImageError, match="blank: no ink"):
        normalize(np.full((30, 40), 0.7, np.float32))


def test_image_error_survives_pickling() -> None:
    import pickle

    e = pickle.loads(pickle.dumps(ImageError("corrupt", "cannot decode: x")))
    assert (
        isinstance(e, ImageError) and e.kind == "corrupt" and str(e) == "corrupt: cannot decode: x"
    )


def test_extensions_match_in_any_case() -> None:
    for name in ("a.PNG", "b.JpEg", "c.tif", "d.TIFF", "e.webp", "f.gif", "g.bmp", "h.jpg"):
        assert images.is_image_name(name), name
    for name in ("notes.txt", "png", "archive.png.zip", ".DS_Store"):
        assert not images.is_image_name(name), name


def test_a_nan_pixel_is_corrupt_not_blank(tmp_path: Path) -> None:
    from PIL import Image

    a = np.zeros((28, 28), dtype=np.float32)
    a[10:20, 12:16] = 1.0
    a[0, 0] = np.nan
    path = tmp_path / "nan.tif"
    Image.fromarray(a, mode="F").save(path)
    with pytest.raises(ImageError, match="corrupt: non-finite pixel values"):
        read_digit(path)


def test_a_file_opens_by_what_it_is_whatever_its_extension_says(tmp_path: Path) -> None:
    """PNG and JPEG files are opened by their extension's plugin first (faster); a misnamed
    file falls back to Pillow's probing and reads exactly as when named right."""
    rng = np.random.default_rng(3)
    digit = Image.fromarray((rng.random((40, 30)) < 0.2).astype(np.uint8) * 255)
    for fmt, right, wrong in (("PNG", "a.png", "a.jpg"), ("JPEG", "b.jpg", "b.png")):
        named_right = save(digit, tmp_path / right, format=fmt)
        named_wrong = save(digit, tmp_path / wrong, format=fmt)
        for path in (named_right, named_wrong):
            assert images.open_image(path).format == fmt
        np.testing.assert_array_equal(read_digit(named_right), read_digit(named_wrong))
        np.testing.assert_array_equal(
            read_digit(named_right), read_digit(io.BytesIO(named_right.read_bytes()))
        )
    gif = save(digit, tmp_path / "c.png", format="GIF")
    assert images.open_image(gif).format == "GIF"
    broken = tmp_path / "broken.png"
    broken.write_bytes((tmp_path / "a.png").read_bytes()[:60])
    with pytest.raises(ImageError, match="corrupt"):
        read_digit(broken)


def test_the_stack_shift_pads_only_what_it_needs_and_equals_pasting_one_by_one() -> None:
    """normalize's shift of a stack (windows of a frame padded just enough) against the
    per-image paste, over shapes and shifts that reach past every edge."""
    from softmax_core import normalize

    rng = np.random.default_rng(7)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 60, 2))
        m = int(rng.integers(5, 20))  # more than the few frames pasted one by one anyway
        frames = rng.random((m, h, w), dtype=np.float32)
        dy = rng.integers(-70, 40, m).astype(np.intp)
        dx = rng.integers(-70, 40, m).astype(np.intp)
        want = np.zeros((m, 28, 28), np.float32)
        for i in range(m):
            normalize._paste(want[i], frames[i], int(dy[i]), int(dx[i]))
        np.testing.assert_array_equal(normalize._shift(frames, dy, dx), want)
