"""Classification metrics and the paired test the gate uses: pure numpy.

``y``, ``pred``: (n,) integer labels in ``0..k-1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import InvalidInputError

IntArray = NDArray[np.integer]


def _check_pair(y: Any, pred: Any) -> tuple[IntArray, IntArray]:
    y = np.asarray(y)
    pred = np.asarray(pred)
    if y.ndim != 1 or y.shape != pred.shape:
        raise InvalidInputError(
            f"labels and predictions must be 1-D of the same length, got {y.shape} and {pred.shape}"
        )
    if y.size == 0:
        raise InvalidInputError("cannot score an empty set of predictions")
    return y.astype(np.int64, copy=False), pred.astype(np.int64, copy=False)


def accuracy(y: Any, pred: Any) -> float:
    """Fraction of predictions equal to the labels."""
    y, pred = _check_pair(y, pred)
    return float(np.mean(y == pred))


def confusion_matrix(y: Any, pred: Any, n_classes: int = 10) -> NDArray[np.int64]:
    """C[i, j] = number of samples of true class i predicted as j; (k, k) int64."""
    y, pred = _check_pair(y, pred)
    for name, a in (("label", y), ("prediction", pred)):
        bad = (a < 0) | (a >= n_classes)
        if bad.any():
            raise InvalidInputError(
                f"{name} {int(a[np.argmax(bad)])} is outside 0..{n_classes - 1}"
            )
    return np.bincount(y * n_classes + pred, minlength=n_classes * n_classes).reshape(
        n_classes, n_classes
    )


@dataclass(frozen=True)
class ClassMetrics:
    """Precision, recall and support of one class (``digit``)."""

    digit: int
    precision: float
    recall: float
    support: int

    def to_json(self) -> dict[str, Any]:
        return {
            "class": self.digit,
            "precision": self.precision,
            "recall": self.recall,
            "support": self.support,
        }


def per_class(confusion: NDArray[np.integer]) -> tuple[ClassMetrics, ...]:
    """Precision, recall and support per class from a confusion matrix.

    A class never predicted has precision 0 (no true positives to credit), like
    scikit-learn's ``zero_division=0``.
    """
    c = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(c)
    predicted = c.sum(axis=0)
    support = c.sum(axis=1)
    return tuple(
        ClassMetrics(
            digit=k,
            precision=float(tp[k] / predicted[k]) if predicted[k] else 0.0,
            recall=float(tp[k] / support[k]) if support[k] else 0.0,
            support=int(support[k]),
        )
        for k in range(c.shape[0])
    )


@dataclass(frozen=True)
class EvaluationReport:
    """What ``evaluate`` reports on a labelled set: accuracy over ``n`` images, the
    per-class table, the confusion matrix (``confusion[i][j]``: class i predicted as j)
    and, for MNIST test, the digest of the data it was measured on."""

    accuracy: float
    n: int
    per_class: tuple[ClassMetrics, ...]
    confusion: tuple[tuple[int, ...], ...]
    data_digest: str | None = None

    def to_json(self) -> dict[str, Any]:
        """``{"accuracy", "n", "per_class": [{"class", "precision", "recall", "support"}],
        "confusion", "data_digest"}`` (``data_digest`` only when known)."""
        doc: dict[str, Any] = {
            "accuracy": self.accuracy,
            "n": self.n,
            "per_class": [c.to_json() for c in self.per_class],
            "confusion": [list(row) for row in self.confusion],
        }
        if self.data_digest is not None:
            doc["data_digest"] = self.data_digest
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> EvaluationReport:
        return cls(
            accuracy=float(doc["accuracy"]),
            n=int(doc["n"]),
            per_class=tuple(
                ClassMetrics(
                    int(c["class"]), float(c["precision"]), float(c["recall"]), int(c["support"])
                )
                for c in doc["per_class"]
            ),
            confusion=tuple(tuple(int(v) for v in row) for row in doc["confusion"]),
            data_digest=doc.get("data_digest"),
        )


def report(
    y: Any, pred: Any, n_classes: int = 10, *, data_digest: str | None = None
) -> EvaluationReport:
    """Everything ``evaluate`` prints: accuracy, per-class table, confusion matrix."""
    cm = confusion_matrix(y, pred, n_classes)
    return EvaluationReport(
        accuracy=float(np.trace(cm) / cm.sum()),
        n=int(cm.sum()),
        per_class=per_class(cm),
        confusion=tuple(tuple(int(v) for v in row) for row in cm),
        data_digest=data_digest,
    )


@dataclass(frozen=True)
class McNemarResult:
    """McNemar's exact test on paired predictions of models A and B over the same labels.

    ``only_a``: samples A got right and B wrong; ``only_b``: the reverse. Under the null
    (equal error rates) the discordant count splits Binomial(only_a + only_b, 1/2).
    """

    only_a: int
    only_b: int
    p_value: float  # two-sided exact binomial p-value


def mcnemar_exact(y: Any, pred_a: Any, pred_b: Any) -> McNemarResult:
    """Exact (binomial) McNemar test between two prediction vectors on the same labels."""
    y, pred_a = _check_pair(y, pred_a)
    _, pred_b = _check_pair(y, pred_b)
    ok_a = pred_a == y
    ok_b = pred_b == y
    b = int(np.sum(ok_a & ~ok_b))
    c = int(np.sum(~ok_a & ok_b))
    return McNemarResult(only_a=b, only_b=c, p_value=_binom_two_sided(min(b, c), b + c))


def _binom_two_sided(k: int, n: int) -> float:
    """P(X <= k) * 2 for X ~ Binomial(n, 1/2), k <= n/2, capped at 1; exact in log space."""
    if n == 0:
        return 1.0
    log_half_n = -n * math.log(2.0)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n
        for i in range(k + 1)
    ]
    m = max(terms)
    cdf = math.exp(m) * sum(math.exp(t - m) for t in terms)
    return min(1.0, 2.0 * cdf)
