"""The math of softmax regression: pure numpy, arrays in, arrays out.

Shapes: ``X: (n, d) float32``, ``y: (n,) int64`` labels in ``0..k-1``,
``W: (d, k) float32``, ``b: (k,) float32``, logits ``Z: (n, k)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating]


def log_softmax(Z: FloatArray) -> FloatArray:
    """Row-wise log-softmax, stable: subtract each row's max before exponentiating.

    Z: (n, k) -> (n, k), same dtype.
    """
    shifted = Z - Z.max(axis=1, keepdims=True)
    result: FloatArray = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return result


def softmax(Z: FloatArray) -> FloatArray:
    """Row-wise softmax, stable. Z: (n, k) -> (n, k), rows sum to 1."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    result: FloatArray = e / e.sum(axis=1, keepdims=True)
    return result


def logits(W: FloatArray, b: FloatArray, X: FloatArray) -> FloatArray:
    """Z = X W + b. X: (n, d), W: (d, k), b: (k,) -> (n, k)."""
    return X @ W + b


def loss_and_grad(
    W: FloatArray,
    b: FloatArray,
    X: FloatArray,
    y: NDArray[np.integer],
    l2: float = 0.0,
    weight: FloatArray | None = None,
) -> tuple[float, FloatArray, FloatArray]:
    """Mean cross-entropy plus ``l2/2 * ||W||^2``, and its gradient.

    ``weight``: (n,) per-sample weights w_i: each sample's cross-entropy counts w_i times
    (``-1/n * sum_i w_i log softmax(Z)_i[y_i]``; ``dL/dZ_i`` scaled by w_i). None: all 1.

    The loss, for n samples with one-hot targets T:
        L = -1/n * sum_i log softmax(Z)_i[y_i] + l2/2 * sum(W^2)
    Its gradient, since d(-log softmax(z)[y])/dz = softmax(z) - onehot(y):
        dL/dZ = (softmax(Z) - T) / n
        dL/dW = X^T dL/dZ + l2 * W      (d, k)
        dL/db = sum_i dL/dZ_i           (k,)

    Returns (loss, dW, db); dW and db have W's and b's dtypes.
    """
    loss, dW, db, _ = loss_grad_logits(W, b, X, y, l2, weight)
    return loss, dW, db


def loss_grad_logits(
    W: FloatArray,
    b: FloatArray,
    X: FloatArray,
    y: NDArray[np.integer],
    l2: float = 0.0,
    weight: FloatArray | None = None,
) -> tuple[float, FloatArray, FloatArray, FloatArray]:
    """``loss_and_grad`` that also returns the logits Z (n, k) it computed on the way."""
    n = X.shape[0]
    Z = logits(W, b, X)
    logp = log_softmax(Z)
    rows = np.arange(n)
    nll = -logp[rows, y]
    data = float(nll.mean() if weight is None else (weight * nll).mean())
    loss = data + 0.5 * l2 * float(np.sum(W.astype(np.float64) ** 2))
    dZ = np.exp(logp)
    dZ[rows, y] -= 1.0
    dZ /= n
    if weight is not None:
        dZ *= weight[:, None]
    dW = (X.T @ dZ).astype(W.dtype, copy=False)
    if l2:
        dW += l2 * W
    db = dZ.sum(axis=0).astype(b.dtype, copy=False)
    return loss, dW, db, Z
