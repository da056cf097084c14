"""The math: log-softmax stability and the gradient against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from softmax_core.softmax import log_softmax, loss_and_grad, softmax


def test_log_softmax_is_stable_for_huge_logits() -> None:
    Z = np.array([[1000.0, 0.0, -1000.0], [-1e30, -1e30, -1e30]])
    out = log_softmax(Z)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], [0.0, -1000.0, -2000.0])
    np.testing.assert_allclose(out[1], np.log([1 / 3] * 3))
    np.testing.assert_allclose(softmax(Z).sum(axis=1), 1.0)


def test_log_softmax_matches_definition() -> None:
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(5, 4))
    expected = np.log(np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(log_softmax(Z), expected, rtol=1e-12)


@pytest.mark.parametrize("l2", [0.0, 0.1])
def test_gradient_matches_finite_differences(l2: float) -> None:
    rng = np.random.default_rng(0)
    n, d, k = 7, 5, 4
    X = rng.normal(size=(n, d))
    y = rng.integers(0, k, size=n)
    W = rng.normal(scale=0.5, size=(d, k))
    b = rng.normal(scale=0.5, size=k)
    _, dW, db = loss_and_grad(W, b, X, y, l2)
    eps = 1e-6

    def f(W_: np.ndarray, b_: np.ndarray) -> float:
        return loss_and_grad(W_, b_, X, y, l2)[0]

    num_dW = np.zeros_like(W)
    for i in range(d):
        for j in range(k):
            Wp, Wm = W.copy(), W.copy()
            Wp[i, j] += eps
            Wm[i, j] -= eps
            num_dW[i, j] = (f(Wp, b) - f(Wm, b)) / (2 * eps)
    num_db = np.zeros_like(b)
    for j in range(k):
        bp, bm = b.copy(), b.copy()
        bp[j] += eps
        bm[j] -= eps
        num_db[j] = (f(W, bp) - f(W, bm)) / (2 * eps)
    np.testing.assert_allclose(dW, num_dW, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(db, num_db, rtol=1e-6, atol=1e-8)


def test_loss_value_is_cross_entropy_plus_l2() -> None:
    W = np.zeros((3, 2))
    b = np.zeros(2)
    X = np.ones((4, 3))
    y = np.array([0, 1, 0, 1])
    loss, _, _ = loss_and_grad(W, b, X, y, l2=0.0)
    assert loss == pytest.approx(np.log(2))
    W2 = np.full((3, 2), 2.0)
    loss2, _, _ = loss_and_grad(W2, b, X, y, l2=0.5)
    # equal logits per row -> cross-entropy log 2; penalty 0.5/2 * 6 * 4 = 6
    assert loss2 == pytest.approx(np.log(2) + 6.0)


def test_float32_inputs_keep_float32_gradients() -> None:
    rng = np.random.default_rng(2)
    W = rng.normal(size=(784, 10)).astype(np.float32)
    b = np.zeros(10, np.float32)
    X = rng.random((16, 784), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    _, dW, db = loss_and_grad(W, b, X, y, 1e-4)
    assert dW.dtype == np.float32 and db.dtype == np.float32


def test_a_sample_weight_of_k_counts_the_sample_k_times() -> None:
    """Weights [2, 1, 3] on (a, b, c) over n=3 equal (a, a, b, c, c, c) over n=6, times 2."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3, 5))
    y = np.array([1, 0, 2])
    W, b = rng.normal(size=(5, 3)), rng.normal(size=3)
    weighted = loss_and_grad(W, b, X, y, 0.0, np.array([2.0, 1.0, 3.0]))
    idx = [0, 0, 1, 2, 2, 2]
    repeated = loss_and_grad(W, b, X[idx], y[idx], 0.0)
    for got, want in zip(weighted, repeated, strict=True):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want) * 2, rtol=1e-12)


def test_weighted_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(8)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, 6)
    W, b, w = rng.normal(size=(4, 3)), rng.normal(size=3), rng.uniform(0, 3, 6)
    _, dW, db = loss_and_grad(W, b, X, y, 0.1, w)
    eps = 1e-6
    for i, j in [(0, 0), (2, 1), (3, 2)]:
        Wp, Wm = W.copy(), W.copy()
        Wp[i, j] += eps
        Wm[i, j] -= eps
        num = (loss_and_grad(Wp, b, X, y, 0.1, w)[0] - loss_and_grad(Wm, b, X, y, 0.1, w)[0]) / (
            2 * eps
        )
        assert abs(num - dW[i, j]) < 1e-6
    bp = b.copy()
    bp[1] += eps
    num_b = (loss_and_grad(W, bp, X, y, 0.1, w)[0] - loss_and_grad(W, b, X, y, 0.1, w)[0]) / eps
    assert abs(num_b - db[1]) < 1e-4
