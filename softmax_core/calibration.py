"""Temperature scaling: one number that makes a model's confidence mean what it says.

A softmax regression trained to a low loss is over- or under-confident as a whole: among
the images it gives 0.95, the share it gets right is not 0.95. Temperature scaling (Guo
et al. 2017, "On Calibration of Modern Neural Networks") divides the logits by one
positive number ``T`` before the softmax, ``p = softmax(Z / T)``, with ``T`` chosen to
minimise the negative log-likelihood of labelled images the weights never saw (a held-out
slice of the training data: never the test set). ``T > 1`` softens overconfident
probabilities, ``T < 1`` sharpens timid ones. Dividing by a positive number keeps each
row's order, so the predicted class never changes; only the confidence does. It applies
to any number of classes.

Shapes: logits ``Z (n, k)`` float, labels ``y (n,)`` integers in ``0..k-1``.

Pure numpy and the stdlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import DataFormatError, InvalidInputError
from softmax_core.softmax import log_softmax
from softmax_core.words import plural

# The temperatures the search considers, and that a model file may hold: wide enough for
# any model trained here (MNIST's default model fits T ~ 1.2), narrow enough that a
# hostile file cannot overflow the logits (|Z| / 0.05 stays finite).
T_MIN = 0.05
T_MAX = 20.0
# Fewer held-out images than this fit no temperature (T = 1 is kept): a model trained on
# 20 images was calibrated on 4, and the search ran to T_MAX on them.
MIN_IMAGES = 100
_TOLERANCE = 1e-6  # on log T: the search stops when the bracket is this narrow
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0  # 0.618...


@dataclass(frozen=True)
class Calibration:
    """The temperature a model's logits are divided by, and how it was fitted.

    ``temperature``: ``T`` in ``[T_MIN, T_MAX]``. ``images``: how many held-out images it
    was fitted on. ``nll_before`` / ``nll_after``: their mean negative log-likelihood at
    ``T = 1`` and at ``T`` (after <= before: the search starts from both ends and keeps
    ``T = 1`` when nothing beats it; fewer than :data:`MIN_IMAGES` images: no search,
    ``T = 1``, :attr:`too_few`).
    """

    temperature: float
    images: int
    nll_before: float
    nll_after: float

    def __post_init__(self) -> None:
        t = self.temperature
        if not (isinstance(t, float) and T_MIN <= t <= T_MAX):
            raise InvalidInputError(
                f"temperature={t!r} is invalid; expected a number in [{T_MIN}, {T_MAX}]"
            )

    @property
    def too_few(self) -> bool:
        """Whether it was fitted on fewer than :data:`MIN_IMAGES` images (``T = 1``, kept)."""
        return self.images < MIN_IMAGES

    def note(self) -> str:
        """Why ``T`` is 1 when no fit was tried (too few images), else ''."""
        if not self.too_few:
            return ""
        n = self.images
        return (
            f"{n} held-out {plural(n, 'image')}, too few to fit a temperature: "
            f"at least {MIN_IMAGES}"
        )

    def to_json(self) -> dict[str, Any]:
        """The model file's ``meta.calibration`` object."""
        return {
            "method": "temperature",
            "temperature": self.temperature,
            "images": self.images,
            "nll_before": self.nll_before,
            "nll_after": self.nll_after,
        }

    @classmethod
    def from_json(cls, doc: Any, origin: str) -> Calibration:
        """The calibration in a model file's ``meta.calibration``; anything else (another
        method, a temperature out of range, a wrong type) is a DataFormatError naming
        ``origin`` (a model file may be hostile)."""

        def number(key: str) -> float:
            value = doc.get(key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise DataFormatError(f"{origin}: meta calibration.{key} must be a number")
            if not math.isfinite(value):
                raise DataFormatError(f"{origin}: meta calibration.{key} must be finite")
            return float(value)

        if not isinstance(doc, dict) or doc.get("method") != "temperature":
            raise DataFormatError(
                f"{origin}: meta calibration must be an object with method 'temperature'"
            )
        t = number("temperature")
        if not T_MIN <= t <= T_MAX:
            raise DataFormatError(
                f"{origin}: meta calibration.temperature {t} is outside [{T_MIN}, {T_MAX}]"
            )
        images = doc.get("images")
        if isinstance(images, bool) or not isinstance(images, int) or images < 0:
            raise DataFormatError(f"{origin}: meta calibration.images must be an integer >= 0")
        return cls(t, images, number("nll_before"), number("nll_after"))


def nll(Z: NDArray[np.floating], y: NDArray[np.integer], temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of labels ``y (n,)`` under ``softmax(Z / T)``,
    ``Z (n, k)``; computed in float64."""
    logp = log_softmax(np.asarray(Z, dtype=np.float64) / temperature)
    return float(-logp[np.arange(len(y)), y].mean())


def fit_temperature(Z: Any, y: Any) -> Calibration:
    """The ``T`` in ``[T_MIN, T_MAX]`` that minimises :func:`nll` of ``y (n,)`` under
    ``softmax(Z / T)``, for logits ``Z (n, k)`` of images the model was not trained on.

    A golden-section search over ``log T``: the NLL is convex in ``1 / T`` (a log-sum-exp
    of a linear function of it, minus a linear term), hence unimodal in ``log T``, so the
    bracket never loses the minimum. If ``T = 1`` is no worse than the result (a flat
    NLL, or a minimum within the tolerance of 1), ``T = 1`` is kept; so it is without a
    search for fewer than :data:`MIN_IMAGES` images (a few labels would pull ``T`` to
    either end of the range).

    Raises InvalidInputError for shapes that do not match, labels outside ``0..k-1``, no
    images, or non-finite logits.
    """
    Z = np.asarray(Z, dtype=np.float64)
    y = np.asarray(y)
    if Z.ndim != 2 or y.shape != (Z.shape[0],) or Z.shape[0] == 0 or Z.shape[1] < 2:
        raise InvalidInputError(
            f"cannot fit a temperature to logits of shape {Z.shape} and labels of shape "
            f"{y.shape}; expected (n, k) and (n,) with n >= 1 and k >= 2"
        )
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= Z.shape[1]:
        raise InvalidInputError(f"labels must be integers in 0..{Z.shape[1] - 1}")
    if not np.isfinite(Z).all():
        raise InvalidInputError("cannot fit a temperature to logits that are not finite")
    y = y.astype(np.int64)
    if Z.shape[0] < MIN_IMAGES:
        before = nll(Z, y)
        return Calibration(
            temperature=1.0, images=int(Z.shape[0]), nll_before=before, nll_after=before
        )

    def loss(log_t: float) -> float:
        return nll(Z, y, math.exp(log_t))

    lo, hi = math.log(T_MIN), math.log(T_MAX)
    a, b = hi - _GOLDEN * (hi - lo), lo + _GOLDEN * (hi - lo)
    fa, fb = loss(a), loss(b)
    while hi - lo > _TOLERANCE:
        if fa <= fb:  # the minimum is in [lo, b]
            hi, b, fb = b, a, fa
            a = hi - _GOLDEN * (hi - lo)
            fa = loss(a)
        else:  # in [a, hi]
            lo, a, fa = a, b, fb
            b = lo + _GOLDEN * (hi - lo)
            fb = loss(b)
    log_t = (lo + hi) / 2
    before, after = nll(Z, y), loss(log_t)
    t = min(max(math.exp(log_t), T_MIN), T_MAX)
    if after >= before:
        t, after = 1.0, before
    return Calibration(temperature=t, images=int(Z.shape[0]), nll_before=before, nll_after=after)
