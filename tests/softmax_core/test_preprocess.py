"""Deskewing: agrees with a per-pixel reference, makes ink upright, vectorised over batches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from softmax_core import preprocess
from softmax_core.errors import InvalidInputError


def reference_deskew(img: np.ndarray) -> np.ndarray:
    """The textbook per-pixel loop: bilinear sampling of the sheared, centred image."""
    im = img.astype(np.float64)
    m = im.sum()
    g = np.arange(28)
    mr = (im.sum(1) @ g) / m
    mc = (im.sum(0) @ g) / m
    var_r = (im.sum(1) @ ((g - mr) ** 2)) / m
    cov = ((g - mr)[:, None] * (g - mc)[None, :] * im).sum() / m
    alpha = cov / var_r
    padded = np.zeros((30, 30))
    padded[1:-1, 1:-1] = im
    out = np.zeros((28, 28))
    for r in range(28):
        for c in range(28):
            rr = r + mr - 14
            cc = c + alpha * (r - 14) + mc - 14
            if rr <= -1 or rr >= 28 or cc <= -1 or cc >= 28:
                continue
            r0, c0 = math.floor(rr), math.floor(cc)
            fr, fc = rr - r0, cc - c0
            out[r, c] = (
                padded[r0 + 1, c0 + 1] * (1 - fr) * (1 - fc)
                + padded[r0 + 1, c0 + 2] * (1 - fr) * fc
                + padded[r0 + 2, c0 + 1] * fr * (1 - fc)
                + padded[r0 + 2, c0 + 2] * fr * fc
            )
    return out


def slanted_stroke(slope: float, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    img = np.zeros((28, 28), np.float32)
    for r in range(6, 22):
        c = round(14 + slope * (r - 14)) + offset[1]
        img[r + offset[0], c - 1 : c + 2] = 1.0
    return img


def covariance(img: np.ndarray) -> float:
    g = np.arange(28)
    m = img.sum()
    mr = (img.sum(1) @ g) / m
    mc = (img.sum(0) @ g) / m
    return float(((g - mr)[:, None] * (g - mc)[None, :] * img).sum() / m)


def test_matches_per_pixel_reference() -> None:
    rng = np.random.default_rng(0)
    batch = np.stack(
        [slanted_stroke(0.5), slanted_stroke(-0.3, (2, -3))]
        + [(rng.random((28, 28)) > 0.8).astype(np.float32) * rng.random((28, 28)) for _ in range(3)]
    ).astype(np.float32)
    out = preprocess.deskew(batch)
    for img, got in zip(batch, out, strict=True):
        np.testing.assert_allclose(got, reference_deskew(img), atol=1e-5)


def test_deskewed_ink_is_upright_and_centred() -> None:
    img = slanted_stroke(0.6, (3, 4))
    assert abs(covariance(img)) > 1.0
    out = preprocess.deskew(img[None])[0]
    assert abs(covariance(out)) < 0.1 * abs(covariance(img))
    g = np.arange(28)
    assert (out.sum(1) @ g) / out.sum() == pytest.approx(14, abs=0.3)
    assert (out.sum(0) @ g) / out.sum() == pytest.approx(14, abs=0.3)


def test_blank_image_comes_back_unchanged() -> None:
    out = preprocess.deskew(np.zeros((2, 28, 28), np.float32))
    assert not out.any()


def test_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    batch = (rng.random((50, 28, 28)) ** 4).astype(np.float32)
    whole = preprocess.deskew(batch)
    monkeypatch.setattr(preprocess, "_CHUNK", 7)
    # Equal up to float32 rounding (BLAS sums in a batch-size-dependent order).
    np.testing.assert_allclose(preprocess.deskew(batch), whole, rtol=0, atol=1e-5)


def test_features_scale_uint8_and_apply_steps() -> None:
    img = (slanted_stroke(0.4) * 255).astype(np.uint8)[None]
    raw = preprocess.features(img, ("scale",))
    assert raw.shape == (1, 784) and raw.dtype == np.float32
    assert raw.max() == 1.0 and raw.min() == 0.0
    np.testing.assert_allclose(
        preprocess.features(img, ("scale", "deskew")),
        preprocess.deskew(raw.reshape(1, 28, 28)).reshape(1, 784),
    )
    # Flat (n, 784) input is accepted as well.
    np.testing.assert_array_equal(preprocess.features(img.reshape(1, 784), ("scale",)), raw)


@pytest.mark.parametrize(
    ("steps", "match"),
    [((), "must start with 'scale'"), (("deskew",), "must start"), (("scale", "blur"), "unknown")],
)
def test_unknown_steps_are_refused(steps: tuple[str, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        preprocess.features(np.zeros((1, 28, 28), np.uint8), steps)


def test_wrong_image_shape_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"\(1, 27, 27\)"):
        preprocess.features(np.zeros((1, 27, 27), np.uint8), ("scale",))
