"""SoftmaxRegression: determinism, validation, warm start, progress callback."""

from __future__ import annotations

import numpy as np
import pytest

from softmax_core.errors import InvalidInputError
from softmax_core.model import EpochStats, SoftmaxRegression


def blobs(n: int = 600, d: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ten well separated Gaussian clusters in d dimensions."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(10, d))
    y = rng.integers(0, 10, size=n)
    X = (centres[y] + rng.normal(size=(n, d))).astype(np.float32)
    return X, y


def test_learns_separable_data() -> None:
    X, y = blobs()
    model = SoftmaxRegression(epochs=10, learning_rate=0.05, seed=0).fit(X, y)
    assert model.score(X, y) > 0.95
    assert model.W_.dtype == np.float32 and model.W_.shape == (20, 10)
    assert model.b_.dtype == np.float32 and model.b_.shape == (10,)
    proba = model.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    X, y = blobs()
    a = SoftmaxRegression(epochs=3, seed=7).fit(X, y)
    b = SoftmaxRegression(epochs=3, seed=7).fit(X, y)
    c = SoftmaxRegression(epochs=3, seed=8).fit(X, y)
    assert a.W_.tobytes() == b.W_.tobytes() and a.b_.tobytes() == b.b_.tobytes()
    assert a.W_.tobytes() != c.W_.tobytes()


def test_progress_callback_once_per_epoch() -> None:
    X, y = blobs()
    seen: list[EpochStats] = []
    SoftmaxRegression(epochs=4, seed=0).fit(X, y, callback=seen.append)
    assert [s.epoch for s in seen] == [1, 2, 3, 4]
    assert all(s.epochs == 4 and 0 <= s.accuracy <= 1 and np.isfinite(s.loss) for s in seen)
    assert seen[-1].loss < seen[0].loss
    assert seen[1].learning_rate < seen[0].learning_rate  # decaying schedule


def test_warm_start_begins_from_given_weights() -> None:
    X, y = blobs()
    good = SoftmaxRegression(epochs=10, learning_rate=0.05, seed=0).fit(X, y)
    cold: list[EpochStats] = []
    warm: list[EpochStats] = []
    SoftmaxRegression(epochs=1, seed=1).fit(X, y, callback=cold.append)
    SoftmaxRegression(epochs=1, seed=1, learning_rate=1e-6).fit(
        X, y, init=(good.W_, good.b_), callback=warm.append
    )
    assert warm[0].accuracy > 0.95 > cold[0].accuracy
    # The given arrays are not modified in place.
    before = good.W_.copy()
    SoftmaxRegression(epochs=1, seed=1).fit(X, y, init=(good.W_, good.b_))
    np.testing.assert_array_equal(good.W_, before)


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
        SoftmaxRegression(epochs=1).fit(X, y)


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
def test_bad_hyperparameters_are_named(params: dict[str, float], match: str) -> None:
    X, y = blobs(50)
    with pytest.raises(InvalidInputError, match=match):
        SoftmaxRegression(**params).fit(X, y)  # type: ignore[arg-type]


def test_warm_start_shape_mismatch_is_named() -> None:
    X, y = blobs(50)
    with pytest.raises(InvalidInputError, match=r"expected W\(20, 10\)"):
        SoftmaxRegression(epochs=1).fit(X, y, init=(np.zeros((784, 10)), np.zeros(10)))


def test_predict_checks_fitted_and_width() -> None:
    X, y = blobs(50)
    with pytest.raises(InvalidInputError, match="not fitted"):
        SoftmaxRegression().predict(X)
    model = SoftmaxRegression(epochs=1).fit(X, y)
    with pytest.raises(InvalidInputError, match="has 3 features, expected 20"):
        model.predict(np.zeros((2, 3), np.float32))


def test_divergence_is_reported() -> None:
    X, y = blobs(200)
    with pytest.raises(InvalidInputError, match="diverged"):
        SoftmaxRegression(epochs=3, learning_rate=1e30, average=False).fit(X * 1e10, y)
