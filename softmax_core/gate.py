"""The accuracy gate: should a freshly trained model (the challenger) be published?

Pure: labels and prediction vectors in, a ``GateDecision`` out. Two rules, both checked
on the same test split:

``floor``
    the challenger's test accuracy must be at least ``min_accuracy``;
``champion``
    when a champion exists, the challenger must not be *significantly worse*: it is
    refused when it is less accurate **and** McNemar's exact test on the paired
    predictions gives ``p < alpha``. A small, non-significant dip is allowed (it is
    noise on 10,000 images, and refusing it would freeze the champion forever).

Each domain is gated on its own images: MNIST test, and the holdout split of every
labelled dataset the model was trained on (``domain``, its own floor); ``refusal``
joins the domains that failed into one error that names them.

The decision records every rule that failed, by how much, both accuracies and the
p-value, so the flow can log it, keep it as an artifact and fail with a clear message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from softmax_core import settings
from softmax_core.errors import GateFailedError, InvalidInputError
from softmax_core.metrics import accuracy, mcnemar_exact

DEFAULT_MIN_ACCURACY = settings.MIN_ACCURACY
DEFAULT_ALPHA = settings.ALPHA

RULE_FLOOR = "floor"
RULE_CHAMPION = "champion"


@dataclass(frozen=True)
class GateFailure:
    """One rule the challenger broke: which, by how much (in accuracy), and why."""

    rule: str  # "floor" or "champion"
    shortfall: float  # accuracy points missing (> 0): floor - acc, or champion acc - acc
    message: str


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with the numbers behind it (JSON-ready through ``to_dict``)."""

    accuracy: float
    min_accuracy: float
    alpha: float
    n: int
    champion: str | None = None  # e.g. "mnist:3" (the reference compared against)
    champion_accuracy: float | None = None
    p_value: float | None = None  # McNemar exact, two-sided; None without a champion
    only_challenger: int | None = None  # test images only the challenger got right
    only_champion: int | None = None  # test images only the champion got right
    failures: tuple[GateFailure, ...] = field(default_factory=tuple)
    domain: str | None = None  # None: MNIST test; else the dataset whose holdout this is

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def rule(self) -> str | None:
        """The first rule that failed (floor before champion), or None when it passed."""
        return self.failures[0].rule if self.failures else None

    @property
    def shortfall(self) -> float | None:
        """How much accuracy the first failed rule was missing, or None when it passed."""
        return self.failures[0].shortfall if self.failures else None

    @property
    def message(self) -> str:
        """One line: what passed, or every rule that failed and by how much."""
        on = f" on {self.domain}" if self.domain else ""
        if self.failures:
            return f"gate refused the model{on}: " + "; ".join(f.message for f in self.failures)
        text = f"gate passed{on}: accuracy {self.accuracy:.4f} >= floor {self.min_accuracy:.4f}"
        if self.champion is None:
            return text + "; no champion to compare against"
        return (
            text + f"; champion {self.champion} {self.champion_accuracy:.4f}, "
            f"McNemar p={_fmt_p(self.p_value)} (refused only if worse with p < {self.alpha:g})"
        )

    def error(self) -> GateFailedError:
        """The GateFailedError to raise for a refused model (exit code 5)."""
        if self.passed:
            raise InvalidInputError("the gate passed; there is no error to raise")
        return GateFailedError(self.message + "; nothing was published")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = [asdict(f) for f in self.failures]
        d["passed"] = self.passed
        d["rule"] = self.rule
        d["shortfall"] = self.shortfall
        d["message"] = self.message
        return d


def _fmt_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return f"{p:.3g}" if p >= 1e-3 else f"{p:.2e}"


def decide(
    y: Any,
    pred: Any,
    *,
    min_accuracy: float = DEFAULT_MIN_ACCURACY,
    champion_pred: Any | None = None,
    champion: str | None = None,
    alpha: float = DEFAULT_ALPHA,
    domain: str | None = None,
) -> GateDecision:
    """Apply the floor and (when ``champion_pred`` is given) the champion rule.

    ``y``: (n,) test labels; ``pred``: the challenger's predictions; ``champion_pred``:
    the champion's predictions on the same images; ``champion``: its reference, for the
    report; ``domain``: the dataset these images are the holdout of (None: MNIST test).
    Raises InvalidInputError on a threshold outside its range or mismatched shapes.
    """
    if not (isinstance(min_accuracy, int | float) and 0.0 <= min_accuracy <= 1.0):
        raise InvalidInputError(
            f"min_accuracy={min_accuracy!r} is invalid; expected a number in [0, 1]"
        )
    if not (isinstance(alpha, int | float) and 0.0 < alpha < 1.0):
        raise InvalidInputError(f"alpha={alpha!r} is invalid; expected a number in (0, 1)")
    acc = accuracy(y, pred)
    n = int(np.asarray(y).shape[0])
    failures: list[GateFailure] = []
    if acc < min_accuracy:
        failures.append(
            GateFailure(
                rule=RULE_FLOOR,
                shortfall=min_accuracy - acc,
                message=f"accuracy {acc:.4f} is below the floor {min_accuracy:.4f} "
                f"by {min_accuracy - acc:.4f}",
            )
        )
    if champion_pred is None:
        return GateDecision(
            accuracy=acc,
            min_accuracy=float(min_accuracy),
            alpha=float(alpha),
            n=n,
            failures=tuple(failures),
            domain=domain,
        )

    champ_acc = accuracy(y, champion_pred)
    test = mcnemar_exact(y, pred, champion_pred)
    label = champion or "the champion"
    if acc < champ_acc and test.p_value < alpha:
        failures.append(
            GateFailure(
                rule=RULE_CHAMPION,
                shortfall=champ_acc - acc,
                message=f"accuracy {acc:.4f} is significantly worse than champion {label} "
                f"({champ_acc:.4f}) by {champ_acc - acc:.4f} "
                f"(McNemar p={_fmt_p(test.p_value)} < {alpha:g}; "
                f"{test.only_b} images only the champion got right, "
                f"{test.only_a} only the challenger)",
            )
        )
    return GateDecision(
        accuracy=acc,
        min_accuracy=float(min_accuracy),
        alpha=float(alpha),
        n=n,
        champion=champion,
        champion_accuracy=champ_acc,
        p_value=test.p_value,
        only_challenger=test.only_a,
        only_champion=test.only_b,
        failures=tuple(failures),
        domain=domain,
    )


def refusal(decisions: Sequence[GateDecision]) -> GateFailedError | None:
    """One GateFailedError naming every domain whose rules failed, or None if all passed."""
    failed = [d for d in decisions if not d.passed]
    if not failed:
        return None
    return GateFailedError("; ".join(d.message for d in failed) + "; nothing was published")
