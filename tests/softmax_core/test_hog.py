"""The ``hog`` feature step: the vectorised batch code against a slow per-pixel reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core import preprocess
from softmax_core.errors import InvalidInputError
from softmax_core.model import Model
from softmax_core.preprocess import Hog, Steps

HOG = Hog().to_json()  # the default hog step as a model file records it


def reference_hog(img: np.ndarray, cell: int, bins: int, signed: bool) -> np.ndarray:
    """One image, one pixel at a time, straight from the definition in the docstring."""
    side = img.shape[0]
    cells = side // cell
    hist = np.zeros((cells, cells, bins))

    def at(r: int, c: int) -> float:
        return float(img[r, c]) if 0 <= r < side and 0 <= c < side else 0.0

    span = 2 * math.pi if signed else math.pi
    for r in range(side):
        for c in range(side):
            gx = at(r, c + 1) - at(r, c - 1)
            gy = at(r + 1, c) - at(r - 1, c)
            mag = math.hypot(gx, gy)
            angle = math.atan2(gy, gx) % span
            pos = angle / (span / bins) - 0.5  # bin k is centred at (k + 0.5) * span / bins
            lo = math.floor(pos)
            share_hi = pos - lo
            hist[r // cell, c // cell, lo % bins] += mag * (1 - share_hi)
            hist[r // cell, c // cell, (lo + 1) % bins] += mag * share_hi
    return np.sqrt(hist).reshape(-1)


@pytest.mark.parametrize(
    ("cell", "bins", "signed"), [(4, 8, True), (7, 9, False), (2, 4, True), (14, 1, True)]
)
def test_matches_the_slow_reference(cell: int, bins: int, signed: bool) -> None:
    rng = np.random.default_rng(cell * 100 + bins)
    images = rng.random((5, 28, 28), dtype=np.float32) * (rng.random((5, 28, 28)) < 0.3)
    images[0] = 0.0  # a blank image: all-zero features, no NaN
    images[1, 10:18, 12] = 1.0  # a vertical stroke: gradients along columns only
    got = preprocess.hog(images, Hog(cell=cell, bins=bins, signed=signed))
    assert got.dtype == np.float32 and got.shape == (5, (28 // cell) ** 2 * bins)
    want = np.stack([reference_hog(im, cell, bins, signed) for im in images])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not got[0].any()


def test_features_replay_the_steps_in_chunks_exactly() -> None:
    """The batch path (chunked, after scale and deskew) gives every image the same bits as
    alone or in a batch of any size: no reduction's order follows the batch's shape (a
    scoring batch is whatever is left of a folder's chunk, a model file was trained on
    cached features of 60,000)."""
    rng = np.random.default_rng(0)
    images = (rng.random((1500, 28, 28)) * 255 * (rng.random((1500, 28, 28)) < 0.2)).astype(
        np.uint8
    )
    steps = preprocess.FEATURE_SETS["hog"]
    batch = steps.features(images)
    assert batch.shape == (1500, 392) == (1500, steps.n_features)
    for i in (0, 63, 64, 1023, 1024, 1499):  # either side of a chunk boundary
        np.testing.assert_array_equal(batch[i], steps.features(images[i : i + 1])[0])
    for start, stop in ((5, 30), (100, 109), (1490, 1500)):  # batches of odd sizes
        np.testing.assert_array_equal(batch[start:stop], steps.features(images[start:stop]))
    deskewed = Steps.named("deskew").features(images).reshape(-1, 28, 28)
    np.testing.assert_array_equal(batch, preprocess.hog(deskewed))


@pytest.mark.parametrize("name", sorted(preprocess.FEATURE_SETS))
def test_features_in_threads_are_the_same_bits(name: str) -> None:
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (9000, 28, 28), dtype=np.uint8)  # several chunks
    steps = preprocess.FEATURE_SETS[name]
    one = steps.features(images)
    assert one.tobytes() == steps.features(images, threads=3).tobytes()
    with pytest.raises(InvalidInputError, match="threads must be a positive integer, got 0"):
        steps.features(images, threads=0)


def test_steps_are_recorded_with_their_parameters_and_checked() -> None:
    steps = Steps.parse(["scale", "deskew", "hog"])  # a bare name: defaults
    assert steps.hog == Hog() and steps.to_json()[-1] == HOG
    assert HOG == {"step": "hog", "cell": 4, "bins": 8, "signed": True, "norm": "sqrt"}
    assert steps.key == "scale+deskew+hog-c4-b8-signed-sqrt"
    assert steps.feature_set == "hog"
    assert Steps.parse(["scale", {**HOG, "cell": 7, "bins": 9}]).n_features == 144
    bad: list[Any] = [
        ["scale", "hog", "deskew"],  # hog must be last
        ["scale", {**HOG, "cell": 5}],  # 5 does not tile 28
        ["scale", {**HOG, "bins": 0}],
        ["scale", {**HOG, "bins": 8.0}],
        ["scale", {**HOG, "signed": "yes"}],
        ["scale", {**HOG, "norm": "l2"}],
        ["scale", {**HOG, "extra": 1}],
        ["scale", {"step": "blur"}],
        "scale",
    ]
    for steps_ in bad:
        with pytest.raises(InvalidInputError):
            Steps.parse(steps_)
    with pytest.raises(InvalidInputError, match="expected one of"):
        Steps.named("sift")


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"cell": 5}, r"hog cell 5; expected one of \[2, 4, 7, 14\]"),
        ({"cell": 4.0}, "hog cell 4.0"),
        ({"bins": 0}, r"hog bins 0; expected a whole number 1\.\.32"),
        ({"bins": 33}, "hog bins 33"),
        ({"bins": True}, "hog bins True"),
        ({"signed": 1}, "hog signed 1; expected true or false"),
        ({"norm": "l2"}, r"hog norm 'l2'; expected one of \['sqrt'\]"),
    ],
)
def test_a_hog_step_names_its_bad_parameter(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        Hog(**params)


def test_a_hog_model_file_round_trips_and_its_weights_must_fit_its_features(
    tmp_path: Path,
) -> None:
    steps = preprocess.FEATURE_SETS["hog"]
    ok = Model(W=np.zeros((392, 10), np.float32), b=np.zeros(10, np.float32), steps=steps)
    back = Model.load(ok.save(tmp_path / "hog.npz"))
    assert back.steps == steps
    assert back.steps.to_json() == ["scale", "deskew", HOG]
    with pytest.raises(
        InvalidInputError, match=r"expected float32 W \(392, k\) and b \(k,\) with k 10 or 11"
    ):
        Model(W=np.zeros((784, 10), np.float32), b=np.zeros(10, np.float32), steps=steps)
