"""Classification metrics and the paired tests the gate uses: pure numpy and the stdlib.

``y``, ``pred``: (n,) integer labels in ``0..k-1``; ``probs``: (n, k) class probabilities.

Calibration: :func:`reliability` bins the top probability (the confidence) into equal-width
bins and :func:`expected_calibration_error` is the count-weighted gap between each bin's
accuracy and its mean confidence (15 bins, as Guo et al. 2017 report it).

Paired comparisons (two models on the same images) look only at the images one model got
right and the other wrong: :func:`mcnemar_exact` (two-sided, "do they differ?") and
:class:`PairedDifference` (one-sided tests and bounds on the difference in accuracy, for
non-inferiority within a margin and for a significant improvement; see its docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
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
    ece: float | None = None
    ece_uncalibrated: float | None = None

    @property
    def reject_rate(self) -> float | None:
        """The share of the images predicted "not a digit" (the 11th column of an 11-class
        confusion matrix, all of them errors on a set of digits); None for 10 classes."""
        if len(self.confusion) <= 10 or self.n == 0:
            return None
        return sum(row[10] for row in self.confusion) / self.n

    def to_json(self) -> dict[str, Any]:
        """``{"accuracy", "n", "reject_rate", "ece", "ece_uncalibrated", "per_class":
        [{"class", "precision", "recall", "support"}], "confusion", "data_digest"}``
        (``reject_rate`` for an 11-class model; ``data_digest`` and the two ECEs, with the
        model's temperature and at ``T = 1``, only when known)."""
        doc: dict[str, Any] = {"accuracy": self.accuracy, "n": self.n}
        for key in ("reject_rate", "ece", "ece_uncalibrated"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        doc["per_class"] = [c.to_json() for c in self.per_class]
        doc["confusion"] = [list(row) for row in self.confusion]
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
            ece=None if doc.get("ece") is None else float(doc["ece"]),
            ece_uncalibrated=(
                None if doc.get("ece_uncalibrated") is None else float(doc["ece_uncalibrated"])
            ),
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


ECE_BINS = 15


@dataclass(frozen=True)
class Reliability:
    """Confidence (top probability) against accuracy in equal-width bins over [0, 1].

    ``edges (bins + 1,)``; ``confidence`` / ``accuracy (bins,)``: each bin's mean
    confidence and share right, NaN where a bin is empty; ``count (bins,)``. Bin ``i``
    holds confidences in ``(edges[i], edges[i + 1]]`` (the first one includes 0).
    ``ece``: the expected calibration error, ``sum_i count_i / n * |accuracy_i -
    confidence_i|`` over the non-empty bins.
    """

    edges: NDArray[np.float64]
    confidence: NDArray[np.float64]
    accuracy: NDArray[np.float64]
    count: NDArray[np.int64]
    ece: float


def reliability(probs: Any, correct: Any, bins: int = ECE_BINS) -> Reliability:
    """Reliability-diagram data and ECE of ``probs (n, k)`` whose top class is right where
    ``correct (n,)`` bool is true."""
    p = np.asarray(probs, dtype=np.float64)
    ok = np.asarray(correct, dtype=bool)
    if p.ndim != 2 or ok.shape != (p.shape[0],) or p.shape[0] == 0 or bins < 1:
        raise InvalidInputError(
            f"probabilities of shape {p.shape} and correctness of shape {ok.shape} do not "
            "fit; expected (n, k) and (n,) with n >= 1"
        )
    conf = p.max(axis=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.int64)
    conf_sum = np.bincount(idx, weights=conf, minlength=bins)
    acc_sum = np.bincount(idx, weights=ok.astype(np.float64), minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = conf_sum / count
        mean_acc = acc_sum / count
    gaps = np.where(count > 0, np.abs(mean_acc - mean_conf), 0.0)
    ece = float(np.sum(count * gaps) / count.sum())
    return Reliability(edges, mean_conf, mean_acc, count, ece)


def expected_calibration_error(probs: Any, y: Any, bins: int = ECE_BINS) -> float:
    """ECE of class probabilities ``probs (n, k)`` against labels ``y (n,)``: the images
    binned by confidence (top probability) into ``bins`` equal-width bins over [0, 1],
    ``sum over bins of count / n * |accuracy - mean confidence|``; the prediction is the
    top class. In [0, 1]; 0 for a perfectly calibrated model."""
    p = np.asarray(probs)
    labels = np.asarray(y)
    if p.ndim != 2 or labels.shape != (p.shape[0],):
        raise InvalidInputError(
            f"probabilities of shape {p.shape} and labels of shape {labels.shape} do not "
            "fit; expected (n, k) and (n,)"
        )
    return reliability(p, np.argmax(p, axis=1) == labels, bins).ece


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


def _binom_upper(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2); exact in log space (1 when k <= 0)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    log_half_n = -n * math.log(2.0)
    terms = [
        math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half_n
        for i in range(k, n + 1)
    ]
    m = max(terms)
    return min(1.0, math.exp(m) * sum(math.exp(t - m) for t in terms))


_NORMAL = NormalDist()


@dataclass(frozen=True)
class PairedDifference:
    """Model A's accuracy minus model B's, measured on the same ``n`` labelled images.

    ``only_a``: images A got right and B wrong; ``only_b``: the reverse. The difference is
    ``d = (only_a - only_b) / n``; the images both got right (or wrong) say nothing about
    it, only the split of the discordant ones does.

    Two one-sided questions, each answered with a p-value:

    - :meth:`p_above` (``theta0``): is ``d`` above ``theta0``? With ``theta0 = -margin``
      this is the **non-inferiority** test (H0: A is worse than B by the margin or
      more). Tango's score test (Tango 1998, *Statistics in Medicine* 17:891): the
      statistic ``(only_a - only_b - n*theta0) / sqrt(n*(2*q + theta0*(1 - theta0)))``
      with ``q`` the maximum-likelihood estimate of B's-only share under H0 (a closed
      form, the root of a quadratic). Chosen over the Wald interval, which collapses to
      zero width when the models never disagree, and over an exact unconditional test,
      which needs a search over a nuisance parameter: the score test keeps its level
      close to nominal down to a few dozen images (Tango's simulations) and is the
      interval scipy-free code can compute exactly. At ``theta0 = 0`` it is McNemar's z,
      ``(only_a - only_b) / sqrt(only_a + only_b)``. ``p_above(t) = 1 - p_below(t)``.
    - :meth:`p_better`: is A better at all? McNemar's exact test, one-sided: under H0
      (equal accuracy) the discordant images split Binomial(only_a + only_b, 1/2); the
      p-value is ``P(X >= only_a)``. Exact, so it stays honest on the handful of images a
      user's holdout may hold.

    :meth:`lower` / :meth:`upper`: the one-sided confidence bounds of ``d`` that invert
    the score test (``lower(alpha) > t`` exactly when ``p_above(t) < alpha``); at
    ``alpha = 0.025`` both together are Tango's 95% interval.
    """

    n: int
    only_a: int
    only_b: int

    def __post_init__(self) -> None:
        if not (min(self.only_a, self.only_b) >= 0 and self.only_a + self.only_b <= self.n):
            raise InvalidInputError(
                f"paired counts only_a={self.only_a}, only_b={self.only_b} do not fit "
                f"n={self.n} images"
            )

    @classmethod
    def of(cls, y: Any, pred_a: Any, pred_b: Any) -> PairedDifference:
        """The counts of two prediction vectors on the same labels."""
        test = mcnemar_exact(y, pred_a, pred_b)
        return cls(n=int(np.asarray(y).shape[0]), only_a=test.only_a, only_b=test.only_b)

    @property
    def difference(self) -> float:
        """``(only_a - only_b) / n``: A's accuracy minus B's."""
        return (self.only_a - self.only_b) / self.n

    def score(self, theta0: float) -> float:
        """Tango's score statistic for H0: ``d = theta0`` (``-1 < theta0 < 1``); large when
        ``d`` is above ``theta0``. +-inf when the variance vanishes (no image disagrees
        and ``theta0 = 0``) and the numerator does not."""
        if not -1.0 < theta0 < 1.0:
            raise InvalidInputError(f"theta0={theta0!r} is invalid; expected -1 < theta0 < 1")
        b, c, n = self.only_a, self.only_b, self.n
        w = -b - c + (2 * n - b + c) * theta0
        q = (math.sqrt(max(w * w + 8 * n * c * theta0 * (1 - theta0), 0.0)) - w) / (4 * n)
        var = n * (2 * q + theta0 * (1 - theta0))
        num = b - c - n * theta0
        if var <= 1e-15 * n:
            return 0.0 if abs(num) < 1e-12 else math.copysign(math.inf, num)
        return num / math.sqrt(var)

    def p_above(self, theta0: float) -> float:
        """One-sided p-value of H0: ``d <= theta0`` (small: ``d`` is above ``theta0``)."""
        return 1.0 - _NORMAL.cdf(self.score(theta0))

    def p_below(self, theta0: float) -> float:
        """One-sided p-value of H0: ``d >= theta0`` (small: ``d`` is below ``theta0``)."""
        return _NORMAL.cdf(self.score(theta0))

    def p_better(self) -> float:
        """McNemar's exact one-sided p-value that A is more accurate than B."""
        return _binom_upper(self.only_a, self.only_a + self.only_b)

    def lower(self, alpha: float) -> float:
        """The one-sided ``1 - alpha`` lower confidence bound of ``d`` (score test)."""
        return self._bound(_NORMAL.inv_cdf(1.0 - alpha))

    def upper(self, alpha: float) -> float:
        """The one-sided ``1 - alpha`` upper confidence bound of ``d`` (score test)."""
        return self._bound(-_NORMAL.inv_cdf(1.0 - alpha))

    def _bound(self, z: float) -> float:
        """The ``theta`` where ``score(theta) = z``, by bisection (score falls as theta
        rises); clipped to [-1, 1]."""
        lo, hi = -1.0 + 1e-12, 1.0 - 1e-12
        if self.score(lo) <= z:
            return -1.0
        if self.score(hi) >= z:
            return 1.0
        for _ in range(100):
            mid = (lo + hi) / 2
            if self.score(mid) > z:
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2
