"""The accuracy gate: should a freshly trained model (the challenger) be published?

Pure: labels and prediction vectors in, a ``GateDecision`` out. Each domain is gated on
its own images, MNIST test and the holdout split of every labelled dataset the model was
trained on (``domain``), by the rules a user would weigh them with:

``floor``
    the challenger's accuracy must be at least ``min_accuracy``. On MNIST test (10,000
    images) always. On a user's holdout only when it holds at least
    :func:`floor_min_images` images: the size at which an accuracy measured right at the
    floor is known to within ``settings.FLOOR_HALF_WIDTH`` (5 points) either way, by the
    95% Wilson interval (141 images at the default floor 0.90). On fewer images the floor
    is a coin toss: a model that reads the domain at 0.95 scores under 0.90 on 37 of its
    images about one time in nine, and a user who labelled 20 images a class has a
    holdout of 40.
``non-inferiority`` (with a champion; MNIST and every domain)
    a challenger passes unless it is worse than the champion by more than ``margin``
    (default 0.5 points), by a one-sided test at ``alpha`` on the paired predictions:
    Tango's score test on the difference in accuracy (H0: within the margin; see
    :class:`softmax_core.metrics.PairedDifference`, tested against the published Tango
    interval), so it is refused when the one-sided upper bound of the difference is below
    ``-margin``. On a user's domain a challenger *significantly better* than the champion
    (McNemar's exact one-sided test) passes by definition, and the decision says so.

Why the champion carries the burden of proof, not the challenger (who would have to
*show* its accuracy within the margin, the textbook non-inferiority test):

- a user's holdout can show a difference within a margin ``m`` only when ``n > z**2 *
  (1 - m) / m`` even for two models that never err (540 images at 0.5 points): every
  retraining on a holdout of ordinary size whose champion already reads it well would be
  refused, week after week;
- on MNIST, learning a new script costs this linear model about 0.3 points at any
  weighting that reads the script (``benchmarks/own_data.py``); with the ~70 test images
  the two models disagree on, showing it within 0.5 points fails about a third of such
  runs by chance. Refusing only a drop shown to exceed the margin lets those runs
  through and still stops a real loss: a 1-point drop is refused (p = 2e-6 with 140
  images of disagreement), where "no significant drop", the rule before, refused any
  dip 10,000 images could see (0.26 points, McNemar p = 0.003). The price: a drop a
  little past the margin passes when the evidence is thin (on MNIST the bound is about
  0.15 points wide, so up to about 0.65 points).

``reject rate`` (a challenger that can reject: 11 classes)
    on MNIST test it may reject at most ``max_reject_rate`` of the digits (1%: a rejected
    digit is an error there too, and a user's real digits pay the same); and of the
    held-out generated non-digits (``softmax_core.negatives`` at a seed training never
    draws with) it must reject at least ``min_negatives_rejected``
    (:func:`decide_negatives`, the domain :data:`NEGATIVES`).

Each decision records every rule that failed with by how much, both accuracies, the
paired counts, the p-values and the one-sided bounds of the difference, a one-line
``message`` and, for a refusal, ``advice`` (what to do next); :func:`refusal` joins the
domains into one error that says what was measured on each and what to do.

A rule is a small function of the measured numbers returning a :class:`GateFailure` or
None (``_floor``, ``_non_inferiority``); another rule goes beside them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from statistics import NormalDist
from typing import Any

import numpy as np

from softmax_core import settings
from softmax_core.errors import GateFailedError, InvalidInputError
from softmax_core.metrics import PairedDifference, accuracy
from softmax_core.model import REJECT
from softmax_core.words import plural

DEFAULT_MIN_ACCURACY = settings.MIN_ACCURACY
DEFAULT_ALPHA = settings.ALPHA
DEFAULT_MARGIN = settings.MARGIN
DEFAULT_MAX_REJECT_RATE = settings.MAX_REJECT_RATE
DEFAULT_MIN_NEGATIVES_REJECTED = settings.MIN_NEGATIVES_REJECTED

RULE_FLOOR = "floor"
RULE_NON_INFERIORITY = "non-inferiority"
RULE_REJECT_RATE = "reject rate"  # too many MNIST digits rejected
RULE_NEGATIVES = "negatives rejected"  # too few held-out non-digits rejected
MNIST = "MNIST"  # how messages name MNIST test
NEGATIVES = "held-out negatives"  # how messages name the held-out generated non-digits


@cache
def floor_min_images(floor: float, half_width: float = settings.FLOOR_HALF_WIDTH) -> int:
    """The fewest holdout images on which a floor of ``floor`` is applied: the smallest
    ``n`` whose 95% Wilson interval around an accuracy of exactly ``floor`` is at most
    ``half_width`` either way (141 at 0.90 and 5 points; 83 at 0.95; 35 at 1.0; 381 at 0.5)."""
    z = NormalDist().inv_cdf(0.975)
    for n in range(1, 1_000_001):
        spread = math.sqrt(floor * (1 - floor) / n + z * z / (4 * n * n))
        if z * spread / (1 + z * z / n) <= half_width:
            return n
    return 1_000_001


@dataclass(frozen=True)
class GateFailure:
    """One rule the challenger broke: which, by how much (in accuracy), why, and what to do."""

    rule: str  # RULE_FLOOR, RULE_NON_INFERIORITY, RULE_REJECT_RATE or RULE_NEGATIVES
    shortfall: float  # accuracy missing (> 0): under the floor, or beyond the margin
    message: str
    advice: str = ""  # the next step for the user


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict on one domain with the numbers behind it (``to_dict``: JSON).

    ``domain``: None for MNIST test, else the dataset whose holdout this is. With a
    champion: its accuracy on the same ``n`` images, the images only one model got right,
    ``p_worse`` (small: the challenger is worse by more than ``margin``; refused),
    ``p_better`` (small: it is better) and ``lower``/``upper``, the one-sided ``1 -
    alpha`` bounds of the difference in accuracy (challenger minus champion).
    """

    accuracy: float
    min_accuracy: float
    alpha: float
    n: int
    champion: str | None = None  # e.g. "mnist:3" (the reference compared against)
    champion_accuracy: float | None = None
    p_worse: float | None = None  # one-sided score test, H0: within the margin
    p_better: float | None = None  # McNemar exact, one-sided, H0: not better
    only_challenger: int | None = None  # images only the challenger got right
    only_champion: int | None = None  # images only the champion got right
    failures: tuple[GateFailure, ...] = field(default_factory=tuple)
    domain: str | None = None  # None: MNIST test; else the dataset whose holdout this is
    margin: float = DEFAULT_MARGIN
    floor_applies: bool = True  # False: a holdout too small for the floor to mean anything
    lower: float | None = None  # one-sided 1 - alpha bounds of accuracy - champion_accuracy
    upper: float | None = None
    reject_rate: float | None = None  # share of the images rejected (an 11-class challenger)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def rule(self) -> str | None:
        """The first rule that failed (floor first), or None when it passed."""
        return self.failures[0].rule if self.failures else None

    @property
    def shortfall(self) -> float | None:
        """How much accuracy the first failed rule was missing, or None when it passed."""
        return self.failures[0].shortfall if self.failures else None

    @property
    def difference(self) -> float | None:
        """Challenger minus champion accuracy on these images (None without a champion)."""
        if self.champion_accuracy is None:
            return None
        return self.accuracy - self.champion_accuracy

    @property
    def name(self) -> str:
        """What messages call these images: the dataset, or ``MNIST``."""
        return self.domain or MNIST

    @property
    def comparison(self) -> str | None:
        """Against the champion, in words: ``better``, ``within the margin`` (shown),
        ``no clear difference`` (neither shown), or ``worse beyond the margin`` (the one
        that is refused); None without a champion."""
        if self.p_worse is None or self.p_better is None or self.lower is None:
            return None
        if self.p_better < self.alpha:
            return "better"
        if self.p_worse < self.alpha:
            return "worse beyond the margin"
        if self.lower > -self.margin:
            return "within the margin"
        return "no clear difference"

    @property
    def summary(self) -> str:
        """What was measured, in one clause: ``champion mnist:1 0.9899 vs challenger
        0.9873 on MNIST (10000 images): -0.26 points (at worst -0.40), within the
        0.5-point margin``."""
        if self.domain == NEGATIVES:
            return f"challenger rejects {100 * self.accuracy:.1f}% of {self.n} {NEGATIVES}"
        if self.champion_accuracy is None or self.lower is None or self.upper is None:
            images = f"{self.n} {plural(self.n, 'image')}"
            text = f"challenger {self.accuracy:.4f} on {self.name} ({images})"
        else:
            points = 100 * (self.accuracy - self.champion_accuracy)
            bound = (
                f"at best {100 * self.upper:+.2f}"
                if self.comparison == "worse beyond the margin"
                else f"at worst {100 * self.lower:+.2f}"
            )
            text = (
                f"champion {self.champion or 'the champion'} {self.champion_accuracy:.4f} vs "
                f"challenger {self.accuracy:.4f} on {self.name} "
                f"({self.n} {plural(self.n, 'image')}): "
                f"{points:+.2f} points ({bound}), {self._verdict()}"
            )
        if not self.floor_applies:
            text += (
                f"; floor {self.min_accuracy:.2f} not applied (it needs "
                f"{floor_min_images(self.min_accuracy)} images)"
            )
        return text

    def _verdict(self) -> str:
        """:attr:`comparison` with the margin and the p-value behind it."""
        margin = f"the {100 * self.margin:g}-point margin"
        if self.comparison == "better":
            return f"better (McNemar p={_fmt_p(self.p_better)})"
        if self.comparison == "worse beyond the margin":
            return (
                f"worse beyond {margin} (p={_fmt_p(self.p_worse)} < {self.alpha:g}; "
                f"{self.only_champion} {plural(self.only_champion or 0, 'image')} only the "
                f"champion got right, {self.only_challenger} only the challenger)"
            )
        if (self.difference or 0.0) > 0:  # a gain too few images to show: not "the margin"
            up = f"higher, not shown better (McNemar p={_fmt_p(self.p_better)})"
            if self.comparison == "within the margin":
                return f"{up}, within {margin}"
            return f"{up}, not shown worse than {margin}"
        if self.comparison == "within the margin":
            return f"within {margin}"
        return f"no clear difference, not shown worse than {margin}"

    @property
    def advice(self) -> str:
        """The next steps of every failed rule, joined; empty when it passed."""
        return "; ".join(dict.fromkeys(f.advice for f in self.failures if f.advice))

    @property
    def message(self) -> str:
        """One line: what passed, or every rule that failed and by how much."""
        on = f" on {self.domain}" if self.domain else ""
        if self.failures:
            return f"gate refused the model{on}: " + "; ".join(f.message for f in self.failures)
        if self.domain == NEGATIVES:
            return (
                f"gate passed on {NEGATIVES}: it rejects {100 * self.accuracy:.1f}% of "
                f"{self.n} (at least {100 * self.min_accuracy:g}% required)"
            )
        head = f"gate passed{on}: accuracy {self.accuracy:.4f}"
        if self.floor_applies:
            head += f" >= floor {self.min_accuracy:.4f}"
        if self.reject_rate is not None:
            head += f"; rejects {100 * self.reject_rate:.2f}% as not digits"
        if self.champion_accuracy is not None:
            return f"{head}; {self.summary}"
        if not self.floor_applies:
            head += (
                f" on {self.n} {plural(self.n, 'image')} (the floor {self.min_accuracy:.2f} "
                "needs "
                f"{floor_min_images(self.min_accuracy)})"
            )
        return head + "; no champion to compare against"

    def error(self) -> GateFailedError:
        """The GateFailedError to raise for a refused model (exit code 5)."""
        if self.passed:
            raise InvalidInputError("the gate passed; there is no error to raise")
        return refusal([self]) or GateFailedError(self.message)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = [asdict(f) for f in self.failures]
        for key in ("passed", "rule", "shortfall", "message", "comparison", "difference"):
            d[key] = getattr(self, key)
        return d


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    if p < 1e-15:  # beyond a double's resolution near 1 (p = 1 - cdf)
        return "<1e-15"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


# --- the rules: measured numbers in, a failure (or None) out ---------------------------------


def _floor(acc: float, floor: float, domain: str | None) -> GateFailure | None:
    if acc >= floor:
        return None
    option = "--min-dataset-accuracy" if domain else "--min-accuracy"
    advice = (
        f"label more images of {domain}, or pass {option} {math.floor(acc * 100) / 100:.2f}"
        if domain
        else f"train longer (--epochs), or lower the floor with {option}"
    )
    return GateFailure(
        rule=RULE_FLOOR,
        shortfall=floor - acc,
        message=f"accuracy {acc:.4f} is below the floor {floor:.4f} by {floor - acc:.4f}",
        advice=advice,
    )


def _non_inferiority(
    pair: PairedDifference, champ: str, domain: str | None, *, margin: float, alpha: float
) -> GateFailure | None:
    """Refused when shown worse than the champion by more than ``margin`` (and not
    significantly better, which it then cannot be)."""
    p = pair.p_below(-margin)
    if p >= alpha or pair.p_better() < alpha:
        return None
    on = f"it reads {domain}" if domain else "MNIST accuracy is"
    advice = (
        f"check the labels of {domain} (softmax-pipe dataset show {domain}), or raise --data-weight"
        if domain
        else "lower --data-weight (your images cost MNIST accuracy), or widen --margin"
    )
    return GateFailure(
        rule=RULE_NON_INFERIORITY,
        shortfall=-margin - pair.upper(alpha),
        message=(
            f"{on} {-100 * pair.difference:.2f} points worse than champion {champ}, "
            f"beyond the {100 * margin:g}-point margin (one-sided p={_fmt_p(p)} < {alpha:g}; "
            f"{pair.only_b} {plural(pair.only_b, 'image')} only the champion got right, "
            f"{pair.only_a} only the challenger)"
        ),
        advice=advice,
    )


def _reject_rate(rate: float, most: float, n: int) -> GateFailure | None:
    """MNIST test: a challenger that rejects more than ``most`` of the digits is refused."""
    if rate <= most:
        return None
    return GateFailure(
        rule=RULE_REJECT_RATE,
        shortfall=rate - most,
        message=(
            f"it rejects {100 * rate:.2f}% of MNIST test as not digits "
            f"({round(rate * n)} of {n} {plural(n, 'image')}), over the {100 * most:g}% allowed"
        ),
        advice=(
            "train with fewer generated negatives (--negatives-share), check the "
            "not-a-digit/ folders of your datasets for digits, or raise --max-reject-rate"
        ),
    )


def _negatives_rejected(share: float, least: float, n: int) -> GateFailure | None:
    """Held-out negatives: a challenger that rejects less than ``least`` is refused."""
    if share >= least:
        return None
    return GateFailure(
        rule=RULE_NEGATIVES,
        shortfall=least - share,
        message=(
            f"it rejects {100 * share:.1f}% of {n} held-out generated non-digits, under "
            f"the {100 * least:g}% required"
        ),
        advice=(
            "train with more generated negatives (--negatives-share) or more epochs, or "
            "lower --min-negatives-rejected"
        ),
    )


def decide_negatives(
    pred: Any, *, min_rejected: float = DEFAULT_MIN_NEGATIVES_REJECTED
) -> GateDecision:
    """The reject rule on the held-out generated non-digits (:data:`NEGATIVES`):
    ``pred`` (n,) the challenger's classes; it passes when at least ``min_rejected`` of
    them are :data:`~softmax_core.model.REJECT`. The decision's ``accuracy`` is that share
    (rejecting is the right answer for every one of them) and its floor ``min_rejected``."""
    _check("min_rejected", min_rejected, 0.0 <= min_rejected <= 1.0, "a number in [0, 1]")
    p = np.asarray(pred)
    n = int(p.shape[0])
    if n == 0:
        raise InvalidInputError("decide_negatives needs at least one prediction")
    share = float(np.mean(p == REJECT))
    rule = _negatives_rejected(share, float(min_rejected), n)
    return GateDecision(
        accuracy=share,
        min_accuracy=float(min_rejected),
        alpha=DEFAULT_ALPHA,
        n=n,
        domain=NEGATIVES,
        failures=(rule,) if rule else (),
        reject_rate=share,
    )


def _check(name: str, value: Any, ok: bool, expected: str) -> None:
    if not (isinstance(value, int | float) and not isinstance(value, bool) and ok):
        raise InvalidInputError(f"{name}={value!r} is invalid; expected {expected}")


def decide(
    y: Any,
    pred: Any,
    *,
    min_accuracy: float = DEFAULT_MIN_ACCURACY,
    champion_pred: Any | None = None,
    champion: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    margin: float = DEFAULT_MARGIN,
    domain: str | None = None,
    max_reject_rate: float | None = None,
) -> GateDecision:
    """Apply the rules of the module doc to one domain's images.

    ``y``: (n,) labels; ``pred``: the challenger's predictions; ``champion_pred``: the
    champion's on the same images (None: there is no champion); ``champion``: its
    reference, for messages; ``domain``: the dataset these images are the holdout of
    (None: MNIST test; a name: a user's domain, whose floor needs enough images);
    ``max_reject_rate``: for a challenger that can reject, the most of these images it may
    reject (``pred == REJECT``); None: not checked. Raises InvalidInputError on a
    threshold outside its range or mismatched shapes.
    """
    _check("min_accuracy", min_accuracy, 0.0 <= min_accuracy <= 1.0, "a number in [0, 1]")
    _check("alpha", alpha, 0.0 < alpha < 1.0, "a number in (0, 1)")
    _check("margin", margin, 0.0 <= margin < 1.0, "a number in [0, 1)")
    acc = accuracy(y, pred)
    n = int(np.asarray(y).shape[0])
    applies = domain is None or n >= floor_min_images(float(min_accuracy))
    failures = [f for f in [_floor(acc, min_accuracy, domain) if applies else None] if f]
    rate = None
    if max_reject_rate is not None:
        _check("max_reject_rate", max_reject_rate, 0.0 <= max_reject_rate <= 1.0, "in [0, 1]")
        rate = float(np.mean(np.asarray(pred) == REJECT)) if n else 0.0
        failures += [f for f in [_reject_rate(rate, float(max_reject_rate), n)] if f]
    common: dict[str, Any] = {
        "accuracy": acc,
        "min_accuracy": float(min_accuracy),
        "alpha": float(alpha),
        "margin": float(margin),
        "n": n,
        "domain": domain,
        "floor_applies": applies,
        "reject_rate": rate,
    }
    if champion_pred is None:
        return GateDecision(failures=tuple(failures), **common)
    pair = PairedDifference.of(y, pred, champion_pred)
    label = champion or "the champion"
    rule = _non_inferiority(pair, label, domain, margin=margin, alpha=alpha)
    failures += [rule] if rule else []
    return GateDecision(
        champion=champion,
        champion_accuracy=acc - pair.difference,
        p_worse=pair.p_below(-margin),
        p_better=pair.p_better(),
        only_challenger=pair.only_a,
        only_champion=pair.only_b,
        failures=tuple(failures),
        lower=pair.lower(alpha),
        upper=pair.upper(alpha),
        **common,
    )


def _refused(d: GateDecision) -> str:
    """A refused domain: what was measured, and the rules the measurement does not say."""
    on = f" on {d.domain}" if d.domain else ""
    others = [f.message for f in d.failures if f.rule != RULE_NON_INFERIORITY]
    return f"gate refused the model{on}: " + "; ".join([*others, d.summary])


def refusal(decisions: Sequence[GateDecision]) -> GateFailedError | None:
    """One GateFailedError saying what was measured on every domain (the refused ones
    first, with their reasons) and what to do next; None if every domain passed. E.g.
    ``gate refused the model on script: accuracy 0.7000 is below the floor 0.9000 by
    0.2000; champion mnist:1 0.2100 vs challenger 0.7000 on script (150 images): ...;
    champion mnist:1 0.9899 vs challenger 0.9873 on MNIST (10000 images): -0.26 points
    (at worst -0.40), within the 0.5-point margin; next step: label more images of
    script, or pass --min-dataset-accuracy 0.70; nothing was published``."""
    failed = [d for d in decisions if not d.passed]
    if not failed:
        return None
    refused = "; ".join(_refused(d) for d in failed)
    measured = "; ".join(d.summary for d in decisions if d.passed)
    advice = "; ".join(dict.fromkeys(d.advice for d in failed if d.advice))
    parts = [refused, measured, f"next step: {advice}" if advice else "", "nothing was published"]
    return GateFailedError("; ".join(p for p in parts if p))
