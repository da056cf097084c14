"""Temperature scaling: the fit, its bounds, its record in a model file, and the models
files written before it existed."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softmax_core.calibration import (
    MIN_IMAGES,
    T_MAX,
    T_MIN,
    Calibration,
    fit_temperature,
    nll,
)
from softmax_core.errors import DataFormatError, InvalidInputError
from softmax_core.model import Model
from softmax_core.preprocess import Steps
from softmax_core.softmax import softmax

DATA = Path(__file__).parent / "data"
# Written by the code before temperatures (main at e62ed58): a hog model trained on 1,000
# MNIST images, and the probabilities that code gave for FIXTURE_IMAGES.
BEFORE = DATA / "model-before-calibration.npz"
BEFORE_PROBS = DATA / "model-before-calibration-probs.npy"


def sampled(T: float, n: int = 20000, k: int = 10, seed: int = 0) -> tuple[Any, Any]:
    """Logits (n, k) and labels drawn from softmax(logits / T): T is the truth."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(scale=4.0, size=(n, k))
    p = softmax(Z / T)
    y = (rng.random((n, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    return Z, np.minimum(y, k - 1)


@pytest.mark.parametrize("truth", [0.5, 1.0, 2.0, 5.0])
def test_the_fit_finds_the_temperature_the_labels_were_drawn_with(truth: float) -> None:
    Z, y = sampled(truth)
    cal = fit_temperature(Z, y)
    assert cal.temperature == pytest.approx(truth, rel=0.05)
    assert cal.images == 20000 and cal.nll_after <= cal.nll_before


def test_the_fit_is_the_minimum_of_the_nll() -> None:
    Z, y = sampled(1.7, n=3000, k=3, seed=1)  # any number of classes
    cal = fit_temperature(Z, y)
    grid = np.exp(np.linspace(math.log(T_MIN), math.log(T_MAX), 2001))
    best = min(nll(Z, y, float(t)) for t in grid)
    assert cal.nll_after <= best + 1e-9
    assert cal.nll_after == pytest.approx(nll(Z, y, cal.temperature))
    assert cal.nll_before == pytest.approx(nll(Z, y, 1.0))


def test_the_temperature_keeps_the_order_of_every_row() -> None:
    Z, y = sampled(3.0, n=2000)
    t = fit_temperature(Z, y).temperature
    assert t > 2 and np.array_equal(np.argmax(Z / t, axis=1), np.argmax(Z, axis=1))


def test_labels_always_right_by_a_wide_margin_sharpen_to_the_bound() -> None:
    Z = np.zeros((MIN_IMAGES, 4))
    Z[:, 2] = 5.0
    cal = fit_temperature(Z, np.full(MIN_IMAGES, 2))
    assert cal.temperature == pytest.approx(T_MIN, rel=1e-4)
    assert not cal.too_few and cal.note() == ""


@pytest.mark.parametrize("n", [1, 4, MIN_IMAGES - 1])
def test_too_few_images_keep_a_temperature_of_one_and_say_so(n: int) -> None:
    """A model trained on 20 images was calibrated on 4: the search ran to T_MAX on them
    (and the test set's calibration error went from 0.18 at 1 to 0.54)."""
    Z = np.zeros((n, 10))
    Z[:, 3] = 8.0  # sure of 3, and always wrong: the NLL falls all the way to T_MAX
    cal = fit_temperature(Z, np.zeros(n, int))
    many = np.tile(Z[:1], (MIN_IMAGES, 1))  # the same rows, enough of them: searched
    assert fit_temperature(many, np.zeros(MIN_IMAGES, int)).temperature > 19
    assert (cal.temperature, cal.images, cal.too_few) == (1.0, n, True)
    assert cal.nll_after == cal.nll_before == pytest.approx(nll(Z, np.zeros(n, int)))
    image = "image" if n == 1 else "images"
    assert cal.note() == f"{n} held-out {image}, too few to fit a temperature: at least 100"


@pytest.mark.parametrize(
    ("Z", "y", "match"),
    [
        (np.zeros((3, 10)), np.zeros(2, int), "shape"),
        (np.zeros((0, 10)), np.zeros(0, int), "shape"),
        (np.zeros((3, 1)), np.zeros(3, int), "shape"),
        (np.zeros((3, 10)), np.array([0, 1, 10]), "0..9"),
        (np.zeros((3, 10)), np.array([0.0, 1.0, 2.0]), "integers"),
        (np.full((3, 10), np.inf), np.zeros(3, int), "not finite"),
    ],
)
def test_bad_logits_or_labels_are_refused(Z: Any, y: Any, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        fit_temperature(Z, y)


# --- in the model and its file -------------------------------------------------------------


def model(calibration: Calibration | None = None) -> Model:
    steps = Steps.named("pixels")
    rng = np.random.default_rng(0)
    return Model(
        W=rng.normal(size=(steps.n_features, 10)).astype(np.float32),
        b=rng.normal(size=10).astype(np.float32),
        steps=steps,
        calibration=calibration,
    )


def images(n: int = 32) -> Any:
    return np.random.default_rng(3).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_the_model_divides_its_logits_and_keeps_its_predictions() -> None:
    plain = model()
    warm = plain.evolve(calibration=Calibration(2.5, 100, 0.5, 0.4))
    X = plain.features(images())
    assert warm.temperature == 2.5 and plain.temperature == 1.0
    np.testing.assert_allclose(warm.logits(X), plain.logits(X) / 2.5, rtol=1e-6)
    np.testing.assert_array_equal(warm.logits(X, calibrated=False), plain.logits(X))
    np.testing.assert_allclose(
        warm.predict_proba(images()), softmax(plain.logits(X) / 2.5), rtol=1e-5
    )
    np.testing.assert_array_equal(warm.predict(images()), plain.predict(images()))
    # softer: the top probability is lower everywhere
    assert (
        warm.predict_proba(images()).max(axis=1) < plain.predict_proba(images()).max(axis=1)
    ).all()


def test_the_calibration_round_trips_through_the_file(tmp_path: Path) -> None:
    cal = Calibration(1.4059538992926779, 5000, 0.039, 0.035)
    back = Model.load(model(cal).save(tmp_path / "m.npz"))
    assert back.calibration == cal
    assert json.loads(str(np.load(tmp_path / "m.npz")["meta"][()]))["calibration"] == {
        "method": "temperature",
        "temperature": 1.4059538992926779,
        "images": 5000,
        "nll_before": 0.039,
        "nll_after": 0.035,
    }
    assert "calibration" not in back.info.extra
    np.testing.assert_array_equal(back.predict_proba(images()), model(cal).predict_proba(images()))


def test_a_model_without_a_temperature_writes_no_calibration(tmp_path: Path) -> None:
    with np.load(model().save(tmp_path / "m.npz")) as z:
        assert "calibration" not in json.loads(str(z["meta"][()]))


def test_a_file_written_before_temperatures_scores_as_it_did(
    mnist_dir: Path, session_cache: Path
) -> None:
    """The probabilities stored when the file was written, to a float32 rounding: OpenBLAS
    picks its kernels by CPU, and on an AMD EPYC (its Haswell ones: AVX2) a product's last
    bits differ from where they were stored, by 1e-7 of a probability, 2e-6 of one under
    1e-8 (the test compared bytes, true only on one kind of CPU). A temperature of 1.01 would
    move the smallest of them (3e-13) by 33%."""
    from softmax_core.mnist import load_mnist

    old = Model.load(BEFORE)
    assert old.calibration is None and old.temperature == 1.0
    ds = load_mnist(str(mnist_dir), cache_dir=session_cache)
    fixture = np.concatenate(
        [
            np.random.default_rng(24).integers(0, 256, (16, 28, 28), dtype=np.uint8),
            np.asarray(ds.x_test[:48]),
        ]
    )
    then = np.load(BEFORE_PROBS)
    now = old.predict_proba(fixture)
    assert now.dtype == then.dtype and now.shape == then.shape
    np.testing.assert_allclose(now, then, rtol=1e-5, atol=0)
    assert (now.argmax(axis=1) == then.argmax(axis=1)).all()
    # and written again, the same bytes: nothing added
    assert old.to_bytes() == BEFORE.read_bytes()


def hostile(calibration: Any) -> bytes:
    src = Model.load(BEFORE)
    meta = json.loads(str(np.load(BEFORE)["meta"][()]))
    meta["calibration"] = calibration
    buf = io.BytesIO()
    np.savez(buf, W=src.W, b=src.b, meta=np.array(json.dumps(meta)))
    return buf.getvalue()


GOOD = {
    "method": "temperature",
    "temperature": 1.5,
    "images": 10,
    "nll_before": 1.0,
    "nll_after": 0.9,
}


@pytest.mark.parametrize(
    ("calibration", "match"),
    [
        ({**GOOD, "temperature": 0.0}, "outside"),
        ({**GOOD, "temperature": 1e30}, "outside"),
        ({**GOOD, "temperature": float("nan")}, "finite"),
        ({**GOOD, "temperature": "2"}, "number"),
        ({**GOOD, "temperature": True}, "number"),
        ({**GOOD, "method": "platt"}, "method"),
        ({**GOOD, "images": -1}, "images"),
        ({k: v for k, v in GOOD.items() if k != "nll_after"}, "nll_after"),
        (None, "object"),
        (1.5, "object"),
    ],
)
def test_a_hostile_calibration_is_refused(calibration: Any, match: str) -> None:
    with pytest.raises(DataFormatError, match=f"evil.npz: meta calibration.*{match}"):
        Model.from_bytes(hostile(calibration), origin="evil.npz")


def test_a_calibration_out_of_range_cannot_be_built() -> None:
    with pytest.raises(InvalidInputError, match="temperature"):
        Calibration(0.0, 1, 0.0, 0.0)
