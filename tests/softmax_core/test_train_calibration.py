"""Training calibrates the model: the temperature is fitted on the training split's last
images, scored by a model that did not learn from them; the model itself learns from
every image, so its predictions are what they were before temperatures (real MNIST).

The models are the default's, with the class "not a digit" (11 classes): the temperature is
fitted on the digits' columns (the 10-class model's, trained first), and each model also
learned from its generated negatives and cluttered digits (:func:`n_train`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from softmax_core import metrics, settings
from softmax_core.calibration import fit_temperature
from softmax_core.mnist import Dataset, cached_features, load_mnist
from softmax_core.model import N_CLASSES, REJECT, Model
from softmax_core.requests import Data, Hyper
from softmax_core.softmax import softmax
from softmax_core.train import calibration_split, evaluate, train

SLICE = 5000  # settings.CALIBRATION_IMAGES


@pytest.fixture(scope="module")
def ds(mnist_dir: Path, session_cache: Path) -> Dataset:
    return load_mnist(str(mnist_dir), cache_dir=session_cache)


def tail_logits(model: Model, ds: Dataset) -> np.ndarray:
    """The digits' logits on the slice (an 11-class model's first 10 columns)."""
    X = cached_features(ds, "train", model.steps)[-SLICE:]
    return model.logits(X, calibrated=False)[:, :N_CLASSES]


def same_but_rejects(a: np.ndarray, b: np.ndarray) -> None:
    """Two models with the same weights, one calibrated: the same digits wherever both read
    one. A temperature moves only which images reach the reject threshold (the calibrated
    probability of "not a digit" is compared with it); a digit's argmax stays."""
    differ = a != b
    assert differ.sum() <= 0.01 * len(a)
    assert ((a[differ] == REJECT) | (b[differ] == REJECT)).all()


def n_train(mnist: int, extra: int = 0) -> int:
    """The images an 11-class model learned from: ``mnist`` MNIST images and ``extra`` user
    images, the generated negatives and the cluttered digits (a share of ``mnist`` each)."""
    return mnist + extra + Data().n_negatives(mnist) + math.ceil(settings.CLUTTERED_SHARE * mnist)


def test_the_slice_is_at_most_a_fifth_of_the_split() -> None:
    assert calibration_split(60000, 5000) == 5000
    assert calibration_split(1000, 5000) == 200
    assert calibration_split(60000, 0) == 0
    assert calibration_split(4, 5000) == 0


def test_a_limited_run_learns_as_before_and_fits_on_the_images_it_never_saw(ds: Dataset) -> None:
    hyper = Hyper(features="pixels", epochs=1, limit=3000)
    model = train(ds, hyper)
    plain = train(ds, Hyper(features="pixels", epochs=1, limit=3000, calibration_images=0))
    assert plain.calibration is None and plain.temperature == 1.0
    assert model.W.tobytes() == plain.W.tobytes() and model.b.tobytes() == plain.b.tobytes()
    # the first 3,000 images do not reach the slice: the model's own logits on it
    expected = fit_temperature(tail_logits(model, ds), np.asarray(ds.y_train[-SLICE:]))
    assert model.calibration == expected and expected.images == SLICE
    assert model.info.params["calibration_images"] == SLICE
    assert model.calibration is not None
    assert model.calibration.nll_after < model.calibration.nll_before
    same_but_rejects(model.predict(ds.x_test[:500]), plain.predict(ds.x_test[:500]))


@pytest.mark.slow
def test_the_default_model_keeps_its_weights_and_gets_a_proxys_temperature(ds: Dataset) -> None:
    model = train(ds, Hyper())
    plain = train(ds, Hyper(calibration_images=0))
    # the model learned from all 60,000 images, as before: the same bits, the same accuracy
    assert model.W.tobytes() == plain.W.tobytes() and model.info.n_train == n_train(60000)
    ev, before = evaluate(model, ds), evaluate(plain, ds)
    X_test = cached_features(ds, "test", model.steps)
    same_but_rejects(model.predict_features(X_test), plain.predict_features(X_test))
    # the temperature is not the model's own fit on the slice it learned from, but that of
    # a model trained the same way without the slice
    assert model.calibration is not None
    own = fit_temperature(tail_logits(model, ds), np.asarray(ds.y_train[-SLICE:]))
    assert model.calibration.temperature != pytest.approx(own.temperature, rel=0.02)
    proxy = train(ds, Hyper(limit=60000 - SLICE, calibration_images=0))
    assert model.calibration == fit_temperature(
        tail_logits(proxy, ds), np.asarray(ds.y_train[-SLICE:])
    )
    # on MNIST test: the calibrated error within 1%, the uncalibrated one as the plain model's
    assert ev.ece is not None and ev.ece <= 0.01
    assert ev.ece_uncalibrated == before.ece == before.ece_uncalibrated
    probs = softmax(model.logits(X_test))
    assert ev.ece == pytest.approx(metrics.expected_calibration_error(probs, ds.y_test))
    # the prediction: the top digit, or "not a digit" where its calibrated probability is
    # the largest and at least the threshold
    predicted = model.predict_features(X_test)
    rejected = predicted == REJECT
    assert 0 < rejected.sum() <= settings.MAX_REJECT_RATE * len(predicted)
    assert np.array_equal(predicted[~rejected], np.argmax(probs[~rejected, :N_CLASSES], axis=1))
    assert (probs[rejected, REJECT] >= settings.REJECT_THRESHOLD).all()
    assert (probs[rejected, REJECT] >= probs[rejected, :N_CLASSES].max(axis=1)).all()


def test_a_warm_start_fits_on_a_proxy_trained_from_scratch(ds: Dataset) -> None:
    hyper = Hyper(features="pixels", epochs=1, limit=3000)
    champion = train(ds, Hyper(features="pixels", epochs=1, calibration_images=0))  # saw it all
    warm = train(ds, hyper, init=champion)
    cold = train(ds, hyper)
    assert warm.W.tobytes() != cold.W.tobytes()
    assert warm.calibration == cold.calibration  # the cold model is the proxy: never saw the slice


@pytest.mark.parametrize("limit", [57000, 3000])
def test_the_proxy_learns_the_users_images_too(ds: Dataset, limit: int) -> None:
    extra = [(np.asarray(ds.x_test[:60]), np.asarray(ds.y_test[:60]))]
    data = Data(data_weight=3)
    hyper = Hyper(features="pixels", epochs=1, limit=limit)
    model = train(ds, hyper, data=data, extra=extra)
    # the proxy: MNIST before the slice (up to the limit), and the same jittered user images
    proxy = train(
        ds,
        Hyper(features="pixels", epochs=1, limit=min(limit, 55000), calibration_images=0),
        data=data,
        extra=extra,
    )
    assert model.info.n_train == n_train(min(limit, 60000), 3 * 60)
    assert model.calibration == fit_temperature(
        tail_logits(proxy, ds), np.asarray(ds.y_train[-SLICE:])
    )
