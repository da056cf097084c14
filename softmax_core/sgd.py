"""Softmax regression trained by vectorised minibatch SGD: features and labels in, weights out.

``fit(X, y, hyper)`` takes features ``X: (n, d) float32`` (``softmax_core.preprocess``) and
labels ``y: (n,)`` in ``0..k-1`` and returns a :class:`Fit`: ``W (d, k) float32``,
``b (k,) float32`` (``k``: 10 digits, or 11 with "not a digit") and one :class:`EpochStats` per epoch. SGD with (heavy-ball)
momentum, L2 weight decay and a learning rate decayed as ``lr / (1 + decay * epoch)``;
with ``average`` (the default) the weights are the mean of the iterates over the last
epoch (Polyak-Ruppert averaging), which lands much nearer the optimum than the last noisy
iterate. Deterministic: the same seed and data give byte-identical weights (BLAS runs at
one thread: ``softmax_core.blas``). The loss and its gradient are ``softmax_core.softmax``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import settings
from softmax_core.blas import one_thread
from softmax_core.errors import InvalidInputError
from softmax_core.modelcheck import MAX_WEIGHT, oversized
from softmax_core.requests import Hyper
from softmax_core.softmax import loss_grad_logits

N_CLASSES = 10
CLASS_COUNTS = (10, 11)  # the digits; the digits and "not a digit" (softmax_core.model)


@dataclass(frozen=True)
class EpochStats:
    """What the progress callback receives after each epoch."""

    epoch: int
    epochs: int
    loss: float  # mean training loss over the epoch's minibatches (with L2)
    accuracy: float  # training accuracy over the epoch's minibatches, before each step
    learning_rate: float


ProgressCallback = Callable[[EpochStats], None]
Expand = Callable[[NDArray[np.float32]], NDArray[np.float32]]  # a minibatch's rows -> the model's
CHECK_ROWS = 4096  # rows checked for non-finite values at a time


def validate_features(
    X: Any, *, n_features: int | None = None, name: str = "X"
) -> NDArray[np.float32]:
    """X must be a non-empty, finite (n, d) array; returns it as float32 (no copy if already)."""
    X = np.asarray(X)
    if X.ndim != 2:
        raise InvalidInputError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise InvalidInputError(f"{name} is empty: shape {X.shape}; expected at least one sample")
    if n_features is not None and X.shape[1] != n_features:
        raise InvalidInputError(f"{name} has {X.shape[1]} features, expected {n_features}")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise InvalidInputError(f"{name} must be real numbers, got dtype {X.dtype}")
    X = X.astype(np.float32, copy=False)
    for lo in range(0, X.shape[0], CHECK_ROWS):  # a mask of the whole X was 60 MB at once
        rows = X[lo : lo + CHECK_ROWS]
        if not np.isfinite(rows).all():
            r, c = np.argwhere(~np.isfinite(rows))[0]
            raise InvalidInputError(
                f"{name} has non-finite values, first at row {lo + r}, column {c}: {rows[r, c]}"
            )
    result: NDArray[np.float32] = X
    return result


def validate_weights(w: Any, n: int) -> NDArray[np.float32]:
    """(n,) finite float32 sample weights >= 0, or InvalidInputError naming what is wrong."""
    arr = np.asarray(w, dtype=np.float32)
    if arr.shape != (n,):
        raise InvalidInputError(f"sample_weight has shape {arr.shape}; expected ({n},)")
    if not (np.isfinite(arr).all() and (arr >= 0).all()):
        raise InvalidInputError("sample_weight must be finite and >= 0")
    return arr


def validate_labels(y: Any, n: int, n_classes: int = N_CLASSES) -> NDArray[np.int64]:
    """y must be (n,) integers in 0..n_classes-1."""
    y = np.asarray(y)
    if y.shape != (n,):
        raise InvalidInputError(f"y must have shape ({n},) to match X, got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        if (
            np.issubdtype(y.dtype, np.floating)
            and np.all(np.isfinite(y))
            and np.all(y == np.round(y))
        ):
            y = y.astype(np.int64)
        else:
            raise InvalidInputError(f"y must hold integer class labels, got dtype {y.dtype}")
    bad = (y < 0) | (y >= n_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise InvalidInputError(f"label {int(y[i])} at index {i} is outside 0..{n_classes - 1}")
    result: NDArray[np.int64] = y.astype(np.int64, copy=False)
    return result


@dataclass(frozen=True)
class Fit:
    """What SGD learned: ``W (d, k)``, ``b (k,)`` float32, and one EpochStats per epoch."""

    W: NDArray[np.float32]
    b: NDArray[np.float32]
    history: tuple[EpochStats, ...]


@one_thread()
def fit(
    X: Any,
    y: Any,
    hyper: Hyper,
    *,
    init: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
    callback: ProgressCallback | None = None,
    sample_weight: Any | None = None,
    n_classes: int = N_CLASSES,
    frozen: int = 0,
    expand: Expand | None = None,
) -> Fit:
    """Train on X (n, d) float32 and y (n,) labels in ``0..n_classes-1``; warm-start from
    ``init=(W, b)`` of the same ``n_classes``. ``frozen``: the first that many columns of
    ``init`` (and their biases) stay as they are; only the others learn (the class "not a
    digit" fitted beside a digit model that is kept whole: ``softmax_core.train``).

    ``sample_weight``: (n,) finite weights >= 0, each sample's loss counted that many
    times (None: all 1). ``callback`` gets each epoch's :class:`EpochStats`. ``expand``:
    the model's rows of a minibatch of X's (say, the features followed by functions of
    them that would take more memory than X if made for every row at once); ``W`` is over
    those rows. None: X's rows as they are.
    Raises InvalidInputError for bad data or a run that diverges: a non-finite loss, or
    weights a model file may not hold (``softmax_core.modelcheck.oversized``)."""
    if n_classes not in CLASS_COUNTS:
        raise InvalidInputError(f"n_classes={n_classes!r} is invalid; expected 10 or 11")
    if not 0 <= frozen < n_classes or (frozen and init is None):
        raise InvalidInputError(
            f"frozen={frozen!r} is invalid; expected 0, or fewer than {n_classes} columns "
            "of warm-start weights"
        )
    X = validate_features(X)
    y = validate_labels(y, X.shape[0], n_classes)
    sw = None if sample_weight is None else validate_weights(sample_weight, X.shape[0])
    d = X.shape[1] if expand is None else expand(X[:1]).shape[1]
    if init is not None:
        W = np.array(init[0], dtype=np.float32, copy=True)
        b = np.array(init[1], dtype=np.float32, copy=True)
        if W.shape != (d, n_classes) or b.shape != (n_classes,):
            raise InvalidInputError(
                f"warm-start weights have shapes W{W.shape}, b{b.shape}; "
                f"expected W({d}, {n_classes}), b({n_classes},)"
            )
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise InvalidInputError("warm-start weights contain non-finite values")
    else:
        W = np.zeros((d, n_classes), dtype=np.float32)
        b = np.zeros(n_classes, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported in _sgd
        fitted = _sgd(hyper, X, y, W.copy(), b.copy(), callback, sw, frozen, expand)
    if frozen:  # exactly as given: the averaging's sum and division would round them
        fitted.W[:, :frozen] = W[:, :frozen]
        fitted.b[:frozen] = b[:frozen]
    return fitted


def _sgd(
    hyper: Hyper,
    X: NDArray[np.float32],
    y: NDArray[np.int64],
    W: NDArray[np.float32],
    b: NDArray[np.float32],
    callback: ProgressCallback | None,
    sw: NDArray[np.float32] | None = None,
    frozen: int = 0,
    expand: Expand | None = None,
) -> Fit:
    """The training loop: the weights after ``hyper.epochs`` epochs, and their history
    (the first ``frozen`` columns never move; each minibatch's rows ``expand``-ed)."""
    n = X.shape[0]
    history: list[EpochStats] = []
    vW = np.zeros_like(W)
    vb = np.zeros_like(b)
    rng = np.random.default_rng(hyper.seed)
    bs = min(hyper.batch_size, n)
    mu = np.float32(hyper.momentum)
    for epoch in range(hyper.epochs):
        lr = np.float32(hyper.learning_rate / (1.0 + hyper.decay * epoch))
        order = rng.permutation(n)
        loss_sum = 0.0
        correct = 0
        averaging = hyper.average and epoch == hyper.epochs - 1
        if averaging:
            W_avg = np.zeros_like(W)
            b_avg = np.zeros_like(b)
            steps = 0
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            xb = X[idx] if expand is None else expand(X[idx])
            yb = y[idx]
            loss, dW, db, hits = _step_stats(
                W, b, xb, yb, hyper.l2, None if sw is None else sw[idx]
            )
            loss_sum += loss * len(idx)
            correct += hits
            if frozen:
                dW[:, :frozen] = 0
                db[:frozen] = 0
            vW *= mu
            vW -= lr * dW
            vb *= mu
            vb -= lr * db
            W += vW
            b += vb
            if averaging:
                W_avg += W
                b_avg += b
                steps += 1
        stats = EpochStats(
            epoch=epoch + 1,
            epochs=hyper.epochs,
            loss=loss_sum / n,
            accuracy=correct / n,
            learning_rate=float(lr),
        )
        if not np.isfinite(stats.loss):
            raise _diverged(hyper, epoch + 1, f"loss {stats.loss}")
        if averaging:
            W = W_avg / np.float32(steps)
            b = b_avg / np.float32(steps)
        largest = oversized(W, b)
        if largest is not None:  # a model file could not hold them (modelcheck)
            raise _diverged(
                hyper,
                epoch + 1,
                f"weights reach {largest:.3g}, over the {MAX_WEIGHT:g} a model may hold",
            )
        history.append(stats)
        if callback is not None:
            callback(stats)
    return Fit(W=W, b=b, history=tuple(history))


def _diverged(hyper: Hyper, epoch: int, what: str) -> InvalidInputError:
    """The error of a run that diverged at ``epoch`` (``what``: the loss or the weights
    that show it), naming the setting to lower as the option a user types (``--l2``, as
    the gate's advice names ``--epochs``; ``setting`` holds its parameter, for a settings
    file's key). Heavy-ball SGD on the weight decay's ``l2/2 ||W||^2`` alone is stable only
    while ``learning_rate * l2 < 2 (1 + momentum)``: when ``l2`` breaks that even at the
    default learning rate (or a lower one given), it is ``l2``; otherwise the learning
    rate."""
    lr, l2, mu = hyper.learning_rate, hyper.l2, hyper.momentum
    stable = 2.0 * (1.0 + mu)
    if l2 * min(lr, settings.LEARNING_RATE) >= stable:
        return InvalidInputError(
            f"training diverged at epoch {epoch} ({what}); --l2 is too large: lower it under "
            f"{stable / lr:.3g} (now {l2:g}; with --learning-rate {lr:g} and momentum {mu:g} "
            f"the weight decay alone diverges once l2 x learning rate reaches {stable:g})",
            setting=("l2", l2),
        )
    return InvalidInputError(
        f"training diverged at epoch {epoch} ({what}); lower --learning-rate (now {lr:g})",
        setting=("learning_rate", lr),
    )


def _step_stats(
    W: NDArray[np.float32],
    b: NDArray[np.float32],
    X: NDArray[np.float32],
    y: NDArray[np.int64],
    l2: float,
    weight: NDArray[np.float32] | None = None,
) -> tuple[float, NDArray[np.float32], NDArray[np.float32], int]:
    """Loss, gradient and the number of correct predictions, from one pass over X."""
    loss, dW, db, Z = loss_grad_logits(W, b, X, y, l2, weight)
    return loss, dW, db, int(np.sum(np.argmax(Z, axis=1) == y))
