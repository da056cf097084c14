"""Softmax regression trained by vectorised minibatch SGD, in the scikit-learn manner.

Hyperparameters go to ``__init__`` (keyword-only); ``fit`` validates and returns self;
learned attributes end in ``_``: ``W_ (784, 10) float32``, ``b_ (10,) float32``,
``history_`` (one ``EpochStats`` per epoch).

``fit`` takes features ``X: (n, d) float32`` (see ``softmax_core.preprocess``) and
labels ``y: (n,)`` in ``0..n_classes-1``. Deterministic: the same seed and data give
byte-identical weights.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import settings
from softmax_core.blas import one_thread
from softmax_core.errors import InvalidInputError
from softmax_core.softmax import loss_grad_logits, softmax

N_CLASSES = 10


@dataclass(frozen=True)
class EpochStats:
    """What the progress callback receives after each epoch."""

    epoch: int
    epochs: int
    loss: float  # mean training loss over the epoch's minibatches (with L2)
    accuracy: float  # training accuracy over the epoch's minibatches, before each step
    learning_rate: float


ProgressCallback = Callable[[EpochStats], None]


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
    if not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X))[0]
        raise InvalidInputError(
            f"{name} has non-finite values, first at row {bad[0]}, column {bad[1]}: {X[tuple(bad)]}"
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


class SoftmaxRegression:
    """Multinomial logistic regression: p(y | x) = softmax(x W + b).

    Trained by minibatch SGD with (heavy-ball) momentum, L2 weight decay and a
    learning rate decayed as ``lr / (1 + decay * epoch)``. With ``average`` (the
    default) the learned weights are the mean of the iterates over the last epoch
    (Polyak-Ruppert averaging), which lands much nearer the optimum than the last
    noisy iterate.
    """

    def __init__(
        self,
        *,
        epochs: int = settings.EPOCHS,
        batch_size: int = settings.BATCH_SIZE,
        learning_rate: float = settings.LEARNING_RATE,
        momentum: float = settings.MOMENTUM,
        decay: float = settings.DECAY,
        l2: float = settings.L2,
        average: bool = settings.AVERAGE,
        seed: int = settings.SEED,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.decay = decay
        self.l2 = l2
        self.average = average
        self.seed = seed

    def get_params(self) -> dict[str, Any]:
        """The hyperparameters, as given to ``__init__``."""
        return {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "decay": self.decay,
            "l2": self.l2,
            "average": self.average,
            "seed": self.seed,
        }

    def _validate_params(self) -> None:
        p = self.get_params()
        checks = [
            ("epochs", isinstance(p["epochs"], int) and p["epochs"] >= 1, "an integer >= 1"),
            (
                "batch_size",
                isinstance(p["batch_size"], int) and p["batch_size"] >= 1,
                "an integer >= 1",
            ),
            ("learning_rate", p["learning_rate"] > 0, "> 0"),
            ("momentum", 0 <= p["momentum"] < 1, "in [0, 1)"),
            ("decay", p["decay"] >= 0, ">= 0"),
            ("l2", p["l2"] >= 0, ">= 0"),
            ("seed", isinstance(p["seed"], int) and p["seed"] >= 0, "an integer >= 0"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InvalidInputError(f"{name}={p[name]!r} is invalid; expected {expected}")

    @one_thread()
    def fit(
        self,
        X: Any,
        y: Any,
        *,
        init: tuple[NDArray[np.float32], NDArray[np.float32]] | None = None,
        callback: ProgressCallback | None = None,
        sample_weight: Any | None = None,
    ) -> SoftmaxRegression:
        """Train on X (n, d) float32 and y (n,) labels; warm-start from ``init=(W, b)``.

        ``sample_weight``: (n,) finite weights >= 0, each sample's loss counted that many
        times (None: all 1)."""
        self._validate_params()
        X = validate_features(X)
        y = validate_labels(y, X.shape[0])
        sw = None if sample_weight is None else validate_weights(sample_weight, X.shape[0])
        _n, d = X.shape
        if init is not None:
            W = np.array(init[0], dtype=np.float32, copy=True)
            b = np.array(init[1], dtype=np.float32, copy=True)
            if W.shape != (d, N_CLASSES) or b.shape != (N_CLASSES,):
                raise InvalidInputError(
                    f"warm-start weights have shapes W{W.shape}, b{b.shape}; "
                    f"expected W({d}, {N_CLASSES}), b({N_CLASSES},)"
                )
            if not (np.isfinite(W).all() and np.isfinite(b).all()):
                raise InvalidInputError("warm-start weights contain non-finite values")
        else:
            W = np.zeros((d, N_CLASSES), dtype=np.float32)
            b = np.zeros(N_CLASSES, dtype=np.float32)
        self.history_: list[EpochStats] = []
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            self._sgd(X, y, W, b, callback, sw)
        return self

    def _sgd(
        self,
        X: NDArray[np.float32],
        y: NDArray[np.int64],
        W: NDArray[np.float32],
        b: NDArray[np.float32],
        callback: ProgressCallback | None,
        sw: NDArray[np.float32] | None = None,
    ) -> None:
        """The training loop; sets W_, b_, n_features_in_ and fills history_."""
        n, d = X.shape
        vW = np.zeros_like(W)
        vb = np.zeros_like(b)
        rng = np.random.default_rng(self.seed)
        bs = min(self.batch_size, n)
        mu = np.float32(self.momentum)
        for epoch in range(self.epochs):
            lr = np.float32(self.learning_rate / (1.0 + self.decay * epoch))
            order = rng.permutation(n)
            loss_sum = 0.0
            correct = 0
            averaging = self.average and epoch == self.epochs - 1
            if averaging:
                W_avg = np.zeros_like(W)
                b_avg = np.zeros_like(b)
                steps = 0
            for start in range(0, n, bs):
                idx = order[start : start + bs]
                xb = X[idx]
                yb = y[idx]
                loss, dW, db, hits = _step_stats(
                    W, b, xb, yb, self.l2, None if sw is None else sw[idx]
                )
                loss_sum += loss * len(idx)
                correct += hits
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
                epochs=self.epochs,
                loss=loss_sum / n,
                accuracy=correct / n,
                learning_rate=float(lr),
            )
            if not np.isfinite(stats.loss):
                raise InvalidInputError(
                    f"training diverged at epoch {epoch + 1} (loss {stats.loss}); "
                    f"lower learning_rate (now {self.learning_rate})"
                )
            if averaging:
                W = W_avg / np.float32(steps)
                b = b_avg / np.float32(steps)
            self.history_.append(stats)
            if callback is not None:
                callback(stats)
        self.W_ = W
        self.b_ = b
        self.n_features_in_ = d

    def _check_fitted(self) -> None:
        if not hasattr(self, "W_"):
            raise InvalidInputError("this SoftmaxRegression is not fitted yet; call fit() first")

    @one_thread()
    def predict_proba(self, X: Any) -> NDArray[np.float32]:
        """Class probabilities, (n, 10) float32, rows sum to 1."""
        self._check_fitted()
        X = validate_features(X, n_features=self.n_features_in_)
        return softmax(X @ self.W_ + self.b_)

    @one_thread()
    def predict(self, X: Any) -> NDArray[np.int64]:
        """Most likely class, (n,) int64."""
        self._check_fitted()
        X = validate_features(X, n_features=self.n_features_in_)
        result: NDArray[np.int64] = np.argmax(X @ self.W_ + self.b_, axis=1).astype(np.int64)
        return result

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on (X, y)."""
        pred = self.predict(X)
        return float(np.mean(pred == validate_labels(y, pred.shape[0])))

    @classmethod
    def from_weights(
        cls, W: NDArray[np.float32], b: NDArray[np.float32], **params: Any
    ) -> SoftmaxRegression:
        """A fitted model from stored weights (e.g. a model file)."""
        model = cls(**params)
        W = np.asarray(W, dtype=np.float32)
        b = np.asarray(b, dtype=np.float32)
        if W.ndim != 2 or W.shape[1] != N_CLASSES or b.shape != (N_CLASSES,):
            raise InvalidInputError(
                f"weights have shapes W{W.shape}, b{b.shape}; expected W(d, 10), b(10,)"
            )
        model.W_, model.b_, model.n_features_in_ = W, b, W.shape[0]
        model.history_ = []
        return model


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


def history_dicts(model: SoftmaxRegression) -> list[dict[str, Any]]:
    return [asdict(h) for h in model.history_]
