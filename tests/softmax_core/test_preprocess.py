"""Deskewing (agrees with a per-pixel reference, makes ink upright, vectorised over batches)
and the typed feature steps: parsed once, refused when unknown, replayed in order."""

from __future__ import annotations

import math
import pickle
import typing
from typing import Any

import numpy as np
import pytest

from softmax_core import preprocess, requests, settings
from softmax_core.errors import InvalidInputError
from softmax_core.preprocess import FEATURE_SETS, Deskew, Hog, Scale, Steps

PIXELS, DESKEW = Steps.named("pixels"), Steps.named("deskew")


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
    raw = PIXELS.features(img)
    assert raw.shape == (1, 784) and raw.dtype == np.float32
    assert raw.max() == 1.0 and raw.min() == 0.0
    np.testing.assert_allclose(
        DESKEW.features(img),
        preprocess.deskew(raw.reshape(1, 28, 28)).reshape(1, 784),
    )
    # Flat (n, 784) input is accepted as well.
    np.testing.assert_array_equal(PIXELS.features(img.reshape(1, 784)), raw)


@pytest.mark.parametrize(
    ("steps", "match"),
    [((), "must start with 'scale'"), (("deskew",), "must start"), (("scale", "blur"), "unknown")],
)
def test_unknown_steps_are_refused(steps: tuple[str, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Steps.parse(list(steps))


def test_wrong_image_shape_is_named() -> None:
    with pytest.raises(InvalidInputError, match=r"\(1, 27, 27\)"):
        PIXELS.features(np.zeros((1, 27, 27), np.uint8))


# --- typed steps ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(FEATURE_SETS))
def test_each_feature_set_parses_back_from_its_json(name: str) -> None:
    steps = Steps.named(name)
    assert Steps.parse(steps.to_json()) == steps and Steps.parse(tuple(steps.to_json())) == steps
    assert steps.feature_set == name and steps is FEATURE_SETS[name]
    assert pickle.loads(pickle.dumps(steps)) == steps  # shipped to scoring workers


def test_the_feature_sets_json_key_width_and_description() -> None:
    hog_json = {"step": "hog", "cell": 4, "bins": 8, "signed": True, "norm": "sqrt"}
    assert PIXELS.to_json() == ["scale"] and DESKEW.to_json() == ["scale", "deskew"]
    assert Steps.named("hog").to_json() == ["scale", "deskew", hog_json]
    assert [PIXELS.key, DESKEW.key, Steps.named("hog").key] == [
        "scale",
        "scale+deskew",
        "scale+deskew+hog-c4-b8-signed-sqrt",
    ]
    assert (PIXELS.n_features, DESKEW.n_features, Steps.named("hog").n_features) == (784, 784, 392)
    assert PIXELS.hog is None and Steps.named("hog").hog == Hog()
    assert list(DESKEW) == [Scale(), Deskew()] and len(DESKEW) == 2
    assert Steps.named("hog").describe() == "scale → deskew → hog (4x4 cells, 8 signed bins, sqrt)"
    other = Steps((Scale(), Hog(cell=7, bins=9, signed=False)))
    assert other.feature_set is None and other.n_features == 144
    assert other.key == "scale+hog-c7-b9-unsigned-sqrt"
    assert Steps.parse(other.to_json()) == other


def test_feature_names_are_the_feature_sets() -> None:
    """Three spellings of one list: the requests' literal (what a flow's form offers), the
    settings' tuple (what a request checks) and the steps this module knows."""
    assert typing.get_args(requests.Features) == tuple(FEATURE_SETS)
    assert tuple(FEATURE_SETS) == settings.FEATURE_NAMES
    assert settings.FEATURES in FEATURE_SETS


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (["scale", "sharpen"], "unknown preprocessing step 'sharpen'; this version knows"),
        (["scale", {"step": "blur"}], "unknown preprocessing step"),
        (["scale", {"step": "deskew"}], "unknown preprocessing step"),  # names stand alone
        (["scale", 7], "unknown preprocessing step 7"),
        (["scale", None], "unknown preprocessing step None"),
        (["scale", "Deskew"], "unknown preprocessing step 'Deskew'"),
        (["scale", {"step": "hog", "cell": 4, "bins": 8, "signed": True}], "exactly the keys"),
        (
            [
                "scale",
                {"step": "hog", "cell": 4, "bins": 8, "signed": True, "norm": "sqrt", "x": 1},
            ],
            "exactly the keys",
        ),
        (["scale", "scale"], "'scale' can only be the first step"),
        (["scale", "deskew", "scale"], "'scale' can only be the first step"),
        (["deskew", "scale"], "must start with 'scale'"),
        (["scale", "hog", "deskew"], "'hog' can only be the last step"),
        (["scale"] + ["deskew"] * 16, "17 preprocessing steps, over 16"),
        ("scale", "must be a list"),
        ({"steps": ["scale"]}, "must be a list"),
        (None, "must be a list"),
    ],
    ids=[
        "unknown-name",
        "unknown-object",
        "deskew-as-object",
        "a-number",
        "null",
        "case",
        "hog-missing-param",
        "hog-unknown-param",
        "second-scale",
        "scale-again-later",
        "scale-not-first",
        "hog-not-last",
        "too-many",
        "a-string",
        "an-object",
        "nothing",
    ],
)
def test_parse_refuses_unknown_steps_and_parameters(raw: Any, match: str) -> None:
    """A model file's steps are replayed exactly or not at all: nothing unknown is skipped."""
    with pytest.raises(InvalidInputError, match=match):
        Steps.parse(raw)


def test_steps_are_frozen_and_named_refuses_an_unknown_set() -> None:
    with pytest.raises(AttributeError):
        DESKEW.items = (Scale(),)  # type: ignore[misc]
    with pytest.raises(
        InvalidInputError,
        match=r"features 'sift' are unknown; expected one of \['pixels', 'deskew', 'hog'\]",
    ):
        Steps.named("sift")
