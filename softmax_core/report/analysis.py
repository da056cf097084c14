"""The numbers behind a model report: pure numpy, arrays in, small arrays and dicts out.

Shapes: ``images (n, 28, 28)``, ``labels (n,)`` integers 0..9, ``probs (n, 10)`` float32,
``W (d, 10)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import metrics, settings
from softmax_core.errors import InvalidInputError
from softmax_core.metrics import Reliability as Reliability
from softmax_core.model import Model, decide
from softmax_core.preprocess import SIDE, Steps
from softmax_core.softmax import softmax

N_CLASSES = 10
PIXELS = SIDE * SIDE
RELIABILITY_BINS = metrics.ECE_BINS  # the bins `evaluate --json`'s ece uses


@dataclass(frozen=True)
class Evaluation:
    """One model scored on the test images.

    probs (n, k) float32 (calibrated: the model's temperature applied), pred (n,) int64,
    correct (n,) bool, confusion (k, k) int64, k the model's classes (11: the last is "not
    a digit", the images it rejects); uncalibrated (n, k) float32: the probabilities at
    ``T = 1`` (the same as ``probs`` for a model without a temperature).
    """

    probs: NDArray[np.float32]
    pred: NDArray[np.int64]
    correct: NDArray[np.bool_]
    confusion: NDArray[np.int64]
    uncalibrated: NDArray[np.float32]

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def per_class_accuracy(self) -> NDArray[np.float64]:
        """(10,) recall of each digit (accuracy on the images of that digit); NaN if absent."""
        support = self.confusion.sum(axis=1)[:N_CLASSES]
        with np.errstate(invalid="ignore", divide="ignore"):
            result: NDArray[np.float64] = np.diag(self.confusion)[:N_CLASSES] / support
        return result


def evaluate(model: Model, images: NDArray[np.generic], labels: Any) -> Evaluation:
    """Score ``model`` on (n, 28, 28) ``images`` with its own feature steps."""
    y = np.asarray(labels).astype(np.int64)
    if y.ndim != 1 or y.shape[0] != np.asarray(images).shape[0] or y.size == 0:
        raise InvalidInputError(
            f"labels of shape {y.shape} do not match images of shape {np.shape(images)}; "
            "expected one label per image, at least one image"
        )
    X = model.features(images)
    raw = model.logits(X, calibrated=False)
    uncalibrated = softmax(raw).astype(np.float32, copy=False)
    probs = uncalibrated if model.calibration is None else softmax(model.logits(X))
    if model.can_reject:  # "not a digit" (10) where score rejects by default: an error here
        pred = decide(probs, settings.REJECT_THRESHOLD)
    else:
        pred = np.argmax(raw, axis=1).astype(np.int64)
    return Evaluation(
        probs=probs.astype(np.float32, copy=False),
        pred=pred,
        correct=pred == y,
        confusion=metrics.confusion_matrix(y, pred, model.n_classes),
        uncalibrated=uncalibrated,
    )


def reliability(
    probs: NDArray[np.floating], correct: NDArray[np.bool_], bins: int = RELIABILITY_BINS
) -> Reliability:
    """Reliability diagram data and ECE (:func:`softmax_core.metrics.reliability`); the
    top bin includes confidence 1.0."""
    return metrics.reliability(probs, correct, bins)


def confused_pairs(confusion: NDArray[np.integer], top: int = 3) -> list[tuple[int, int, int]]:
    """The ``top`` most frequent (true, predicted, count) mistakes, largest first, count > 0."""
    off = np.array(confusion, dtype=np.int64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    pairs = [
        (int(i), int(j), int(off[i, j]))
        for i, j in zip(*np.unravel_index(order, off.shape), strict=True)
    ]
    return [p for p in pairs if p[2] > 0]


def examples(ev: Evaluation, labels: Any, true: int, pred: int, limit: int) -> NDArray[np.intp]:
    """Indices of up to ``limit`` images of digit ``true`` predicted as ``pred``, the most
    confidently wrong first."""
    y = np.asarray(labels)
    idx = np.flatnonzero((y == true) & (ev.pred == pred))
    order = np.argsort(-ev.probs[idx, pred], kind="stable")
    result: NDArray[np.intp] = idx[order[:limit]]
    return result


def domain_accuracy(
    correct: NDArray[np.bool_], domains: Sequence[str] | NDArray[Any]
) -> dict[str, tuple[float, int]]:
    """Accuracy and count per domain label (one label per image), sorted by domain."""
    d = np.asarray(domains).astype(str)
    if d.shape != correct.shape:
        raise InvalidInputError(
            f"domains has shape {d.shape}; expected one domain label per image {correct.shape}"
        )
    return {str(k): (float(correct[d == k].mean()), int(np.sum(d == k))) for k in np.unique(d)}


@dataclass(frozen=True)
class HogLayout:
    """How a gradient-feature model lays out its features: (cells_y, cells_x, bins), row-major,
    orientation bin ``b`` centred at ``(b + 0.5) * span / bins`` radians, the gradient angle
    measured in image coordinates (``atan2(d/d row, d/d column)``, rows pointing down)."""

    cells_y: int
    cells_x: int
    bins: int
    cell: int
    span: float  # pi for unsigned gradients, 2 pi for signed


def hog_layout(steps: Steps) -> HogLayout | None:
    """The HOG layout of a model whose last step is ``hog`` (else None)."""
    hog = steps.hog
    if hog is None:
        return None
    cells = SIDE // hog.cell
    span = 2 * np.pi if hog.signed else np.pi
    return HogLayout(cells, cells, hog.bins, hog.cell, float(span))
