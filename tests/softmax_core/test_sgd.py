"""softmax_core.sgd.fit: determinism, validation, warm start, progress callback, sample weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from softmax_core.errors import InvalidInputError
from softmax_core.requests import Hyper
from softmax_core.sgd import EpochStats, Fit, fit
from softmax_core.softmax import softmax


def blobs(n: int = 600, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ten well separated Gaussian clusters in d dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(10, d))
    y = rng.integers(0, 10, size=n)
    X = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y


def predict(fitted: Fit, X: np.ndarray) -> np.ndarray:
    labels: np.ndarray = np.argmax(X @ fitted.W + fitted.b, axis=1)
    return labels


def test_learns_separable_data() -> None:
    X, y = blobs()
    fitted = fit(X, y, Hyper(epochs=10, learning_rate=0.05, seed=0))
    assert np.mean(predict(fitted, X) == y) > 0.95
    assert fitted.W.dtype == np.float32 and fitted.W.shape == (20, 10)
    assert fitted.b.dtype == np.float32 and fitted.b.shape == (10,)
    assert len(fitted.history) == 10
    proba = softmax(X[:5] @ fitted.W + fitted.b)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    X, y = blobs()
    a = fit(X, y, Hyper(epochs=3, seed=7))
    b = fit(X, y, Hyper(epochs=3, seed=7))
    c = fit(X, y, Hyper(epochs=3, seed=8))
    assert a.W.tobytes() == b.W.tobytes() and a.b.tobytes() == b.b.tobytes()
    assert a.W.tobytes() != c.W.tobytes()


def test_progress_callback_once_per_epoch() -> None:
    X, y = blobs()
    seen: list[EpochStats] = []
    fitted = fit(X, y, Hyper(epochs=4, seed=0), callback=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3, 4]
    assert all(s.epochs == 4 and 0 <= s.accuracy <= 1 and np.isfinite(s.loss) for s in seen)
    assert seen[-1].loss < seen[0].loss
    assert seen[1].learning_rate < seen[0].learning_rate  # decaying schedule
    assert fitted.history == tuple(seen)  # what the model file records


def test_warm_start_begins_from_given_weights() -> None:
    X, y = blobs()
    good = fit(X, y, Hyper(epochs=10, learning_rate=0.05, seed=0))
    cold: list[EpochStats] = []
    warm: list[EpochStats] = []
    fit(X, y, Hyper(epochs=1, seed=1), callback=cold.append)
    fit(
        X,
        y,
        Hyper(epochs=1, seed=1, learning_rate=1e-6),
        init=(good.W, good.b),
        callback=warm.append,
    )
    assert warm[0].accuracy > 0.95 > cold[0].accuracy
    # The given arrays are not modified in place.
    before = good.W.copy()
    fit(X, y, Hyper(epochs=1, seed=1), init=(good.W, good.b))
    np.testing.assert_array_equal(good.W, before)


@pytest.mark.parametrize(
    ("X", "y", "match"),
    [
        (np.zeros((0, 4), np.float32), np.zeros(0, int), "empty"),
        (np.zeros((3,), np.float32), np.zeros(3, int), "2-D"),
        (np.array([[0.0, np.nan], [1.0, 2.0]], np.float32), np.array([0, 1]), "non-finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]], np.float32), np.array([0, 1]), "non-finite"),
        (np.zeros((2, 4), np.float32), np.array([0, 10]), "label 10 at index 1 is outside 0..9"),
        (np.zeros((2, 4), np.float32), np.array([-1, 0]), "label -1"),
        (np.zeros((2, 4), np.float32), np.array([0, 1, 2]), r"shape \(2,\)"),
        (np.zeros((2, 4), np.float32), np.array([0.5, 1.0]), "integer class labels"),
        (np.array([["a", "b"]]), np.array([0]), "real numbers"),
    ],
)
def test_bad_input_is_named(X: np.ndarray, y: np.ndarray, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        fit(X, y, Hyper(epochs=1))


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"epochs": 0}, "epochs=0"),
        ({"learning_rate": -1.0}, "learning_rate=-1.0"),
        ({"momentum": 1.0}, "momentum=1.0"),
        ({"batch_size": 0}, "batch_size=0"),
        ({"l2": -0.1}, "l2=-0.1"),
    ],
)
def test_bad_hyperparameters_are_named(params: dict[str, Any], match: str) -> None:
    """fit takes a Hyper, which refuses a bad value when it is built: none reaches SGD
    (every field's checks: tests/softmax_core/test_requests.py)."""
    with pytest.raises(InvalidInputError, match=match):
        Hyper(**params)


def test_warm_start_shape_mismatch_is_named() -> None:
    X, y = blobs(50)
    with pytest.raises(InvalidInputError, match=r"expected W\(20, 10\)"):
        fit(X, y, Hyper(epochs=1), init=(np.zeros((784, 10), np.float32), np.zeros(10, np.float32)))
    with pytest.raises(InvalidInputError, match="non-finite"):
        fit(
            X,
            y,
            Hyper(epochs=1),
            init=(np.full((20, 10), np.nan, np.float32), np.zeros(10, np.float32)),
        )


def test_divergence_is_reported() -> None:
    X, y = blobs(200)
    with pytest.raises(InvalidInputError, match=r"diverged at epoch 1 .*lower --learning-rate"):
        fit(X * 1e10, y, Hyper(epochs=3, learning_rate=1e30, average=False))


def test_weights_a_model_file_would_refuse_are_divergence_too() -> None:
    """A finite loss is not enough: weights over modelcheck's bound were returned, and
    every command then refused the file that held them."""
    X, y = blobs(200)
    with pytest.raises(InvalidInputError, match=r"diverged at epoch 1 \(weights reach") as e:
        fit(X, y, Hyper(epochs=2, learning_rate=20000))
    assert "over the 10000 a model may hold); lower --learning-rate (now 20000)" in str(e.value)
    assert e.value.setting == ("learning_rate", 20000)
    fitted = fit(X, y, Hyper(epochs=2, learning_rate=10))  # large, but it converges
    assert np.abs(fitted.W).max() < 1e4


@pytest.mark.parametrize("l2", [1e30, 10.0])
def test_an_l2_that_makes_the_decay_diverge_is_named(l2: float) -> None:
    """The advice was 'lower learning_rate (now 0.5)' when l2 was what was out of range."""
    X, y = blobs(2000)
    with pytest.raises(InvalidInputError, match=r"--l2 is too large: lower it under 7.6") as e:
        fit(X, y, Hyper(epochs=2, l2=l2))
    assert "lower --learning-rate" not in str(e.value)
    assert e.value.setting == ("l2", l2)
    fit(X, y, Hyper(epochs=2, l2=1.0))  # the same data, an l2 in range: no error


# --- sample weights ----------------------------------------------------------------------


def test_sample_weights_of_one_are_no_weights_at_all() -> None:
    X, y = blobs(300)
    plain = fit(X, y, Hyper(epochs=2, seed=3))
    ones = fit(X, y, Hyper(epochs=2, seed=3), sample_weight=np.ones(300))
    assert ones.W.tobytes() == plain.W.tobytes() and ones.b.tobytes() == plain.b.tobytes()


def test_a_sample_weight_of_zero_leaves_a_class_unlearned() -> None:
    """Weight 0 on every image of one class: its loss never counts, so the model does not
    learn to recognise it (the other classes are learned as before)."""
    X, y = blobs()
    hyper = Hyper(epochs=10, learning_rate=0.05, seed=0)
    weights = np.where(y == 3, 0.0, 1.0)
    plain = predict(fit(X, y, hyper), X)
    unweighted_3 = fit(X, y, hyper, sample_weight=weights)
    pred = predict(unweighted_3, X)
    assert np.mean(plain[y == 3] == 3) > 0.9
    assert np.mean(pred[y == 3] == 3) < 0.1
    assert np.mean(pred[y != 3] == y[y != 3]) > 0.95


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        (np.ones(49), r"sample_weight has shape \(49,\); expected \(50,\)"),
        (np.full(50, -1.0), "finite and >= 0"),
        (np.full(50, np.nan), "finite and >= 0"),
        (np.full(50, np.inf), "finite and >= 0"),
    ],
    ids=["short", "negative", "nan", "inf"],
)
def test_bad_sample_weights_are_named(weights: np.ndarray, match: str) -> None:
    X, y = blobs(50)
    with pytest.raises(InvalidInputError, match=match):
        fit(X, y, Hyper(epochs=1), sample_weight=weights)


def test_eleven_classes_learn_the_eleventh() -> None:
    """The class "not a digit" (10) is one more softmax column: labels 0..10, W (d, 11)."""
    X, y = blobs(800)
    rng = np.random.default_rng(3)
    far = (rng.normal(size=(80, X.shape[1])) + 12.0).astype(np.float32)  # an 11th cluster
    X11, y11 = np.concatenate([X, far]), np.concatenate([y, np.full(80, 10)])
    fitted = fit(X11, y11, Hyper(epochs=10, learning_rate=0.05), n_classes=11)
    assert fitted.W.shape == (20, 11) and fitted.b.shape == (11,)
    assert np.mean(predict(fitted, far) == 10) > 0.95
    with pytest.raises(InvalidInputError, match=r"label 10 at index 800 is outside 0\.\.9"):
        fit(X11, y11, Hyper(epochs=1))  # 10 classes: 10 is not a label
    with pytest.raises(InvalidInputError, match="n_classes=12 is invalid; expected 10 or 11"):
        fit(X, y, Hyper(epochs=1), n_classes=12)
    with pytest.raises(InvalidInputError, match=r"expected W\(20, 11\), b\(11,\)"):
        fit(
            X11,
            y11,
            Hyper(epochs=1),
            init=(np.zeros((20, 10), np.float32), np.zeros(10, np.float32)),
            n_classes=11,
        )


def test_frozen_columns_never_move() -> None:
    X, y = blobs(300)
    base = fit(X, y, Hyper(epochs=3, learning_rate=0.05))
    rng = np.random.default_rng(5)
    far = (rng.normal(size=(40, X.shape[1])) + 12.0).astype(np.float32)
    X11, y11 = np.concatenate([X, far]), np.concatenate([y, np.full(40, 10)])
    W0 = np.concatenate([base.W, np.zeros((20, 1), np.float32)], axis=1)
    b0 = np.concatenate([base.b, np.zeros(1, np.float32)])
    hyper = Hyper(epochs=3, learning_rate=0.05, l2=1e-3)
    fitted = fit(X11, y11, hyper, init=(W0, b0), n_classes=11, frozen=10)
    np.testing.assert_array_equal(fitted.W[:, :10], base.W)
    np.testing.assert_array_equal(fitted.b[:10], base.b)
    assert np.mean(predict(fitted, far) == 10) > 0.95  # the free column learned
    same = predict(fitted, X) == predict(base, X)
    assert same.mean() > 0.95  # the others are read as before, but where the new class wins
    with pytest.raises(InvalidInputError, match="frozen=10 is invalid"):
        fit(X11, y11, hyper, n_classes=11, frozen=10)  # nothing to freeze without init
