"""A watch on every scored batch: the run's profile, and a drift check against the model's
reference profile. Pure: numbers in, frozen records out; no I/O, no scipy.

A :class:`Profile` is what a scoring run (or the model's test set) looked like::

    model, created, input          which model, when, what was scored
    total, ok, rejected, failed    rows by status (rejected: status=rejected rows, 0 for
                                   models without a reject option; failed: status=error)
    labels                         predicted digits of the ok rows, counts 0..9
    confidence_edges, confidence   a histogram of the ok rows' top probability over fixed
                                   bins (``settings.PROFILE_CONFIDENCE_EDGES``)
    confidence_sum                 the sum of those probabilities: ``accuracy_estimate`` is
                                   their mean, what the model expects its accuracy to be
                                   (as good as its calibration)
    drift                          the :class:`Drift` check against the reference, if any

The model's reference profile is the same record computed on MNIST test through the model
(``softmax_core.scoring.profile.reference_profile``). :func:`check_drift` compares a
run's profile with it by three named two-sample tests, each with a p-value:

- ``labels``: Pearson's chi-square test of homogeneity on the 2×10 table of predicted
  digits (run vs reference; digits absent from both dropped), df = digits - 1;
- ``rejected``: the two-proportion z-test (pooled, two-sided) on the rejected share;
- ``confidence``: the two-sample Kolmogorov–Smirnov test on the binned top probability
  (the largest gap between the two cumulative histograms; the asymptotic Kolmogorov
  distribution with Stephens' small-sample correction; on bins it is conservative).

Drift is flagged when a p-value is below ``alpha / 3`` (Bonferroni over the three tests:
the chance of a false flag on a run like the reference is at most ``alpha``).

The survival functions are written here from the textbook formulas: the chi-square's as
the regularised upper incomplete gamma function ``Q(df/2, x/2)`` (series below
``a + 1``, Lentz's continued fraction above: Numerical Recipes §6.2), the normal's as
``erfc(z / sqrt 2) / 2``, the Kolmogorov distribution's as its alternating series
``2 Σ (-1)^(k-1) exp(-2 k² λ²)``; tests hold them to published table values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from softmax_core import settings
from softmax_core.errors import DataFormatError

PROFILE_FORMAT = "softmax-pipe/profile@1"
N_CLASSES = 10
TESTS = ("labels", "rejected", "confidence")
# What each test compares, as the summary's DRIFT line names it.
WHAT = {"labels": "the label mix", "rejected": "the rejected share", "confidence": "the confidence"}

# --- survival functions ------------------------------------------------------------------


def _gamma_series(a: float, x: float) -> float:
    """The regularised lower incomplete gamma P(a, x) by its series (x < a + 1)."""
    term = total = 1.0 / a
    ap = a
    for _ in range(10_000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-15:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _gamma_fraction(a: float, x: float) -> float:
    """The regularised upper incomplete gamma Q(a, x) by Lentz's continued fraction."""
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X ~ chi-square with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError(f"chi-square needs df >= 1, got {df}")
    if x <= 0:
        return 1.0
    a, half = df / 2.0, x / 2.0
    if half < a + 1.0:
        return max(0.0, 1.0 - _gamma_series(a, half))
    return min(1.0, _gamma_fraction(a, half))


def normal_sf(z: float) -> float:
    """P(Z >= z) for a standard normal Z."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def kolmogorov_sf(lam: float) -> float:
    """P(K >= lam) for the Kolmogorov distribution (the limit of sqrt(n)·D)."""
    if lam < 0.2:
        return 1.0  # the series converges slowly here, and the value is 1 to 1e-12
    total = 0.0
    for k in range(1, 101):
        term = (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-16:
            break
    return min(1.0, max(0.0, 2.0 * total))


# --- the three tests ---------------------------------------------------------------------


@dataclass(frozen=True)
class DriftTest:
    """One named test: ``name`` (labels, rejected, confidence), ``test`` (what was
    computed, with its degrees of freedom), its ``statistic`` and ``p_value``."""

    name: str
    test: str
    statistic: float
    p_value: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
        }


def chi_square_homogeneity(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> DriftTest:
    """Pearson's chi-square on the 2×k table of counts ``a`` (the run) and ``b`` (the
    reference); columns empty in both are dropped. Nothing to compare: p = 1."""
    cols = [(x, y) for x, y in zip(a, b, strict=True) if x + y > 0]
    na, nb = sum(x for x, _ in cols), sum(y for _, y in cols)
    if na == 0 or nb == 0 or len(cols) < 2:
        return DriftTest(name, "chi-square homogeneity, nothing to compare", 0.0, 1.0)
    n = na + nb
    stat = 0.0
    for x, y in cols:
        c = x + y
        ea, eb = na * c / n, nb * c / n
        stat += (x - ea) ** 2 / ea + (y - eb) ** 2 / eb
    df = len(cols) - 1
    return DriftTest(name, f"chi-square homogeneity, df={df}", stat, chi2_sf(stat, df))


def two_proportions(name: str, xa: int, na: int, xb: int, nb: int) -> DriftTest:
    """The pooled two-proportion z-test, two-sided, of ``xa/na`` against ``xb/nb``.
    Both shares 0 (or 1), or an empty side: p = 1."""
    if na == 0 or nb == 0:
        return DriftTest(name, "two-proportion z, nothing to compare", 0.0, 1.0)
    pooled = (xa + xb) / (na + nb)
    if pooled in (0.0, 1.0):
        return DriftTest(name, "two-proportion z (both shares equal)", 0.0, 1.0)
    se = math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    z = (xa / na - xb / nb) / se
    return DriftTest(name, "two-proportion z, two-sided", z, min(1.0, 2 * normal_sf(abs(z))))


def ks_binned(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> DriftTest:
    """The two-sample Kolmogorov–Smirnov test on two histograms over the same bins: D is
    the largest gap between their cumulative shares, λ = (√m + 0.12 + 0.11/√m)·D with
    m = na·nb/(na + nb) (Stephens), p = Q_KS(λ)."""
    na, nb = sum(a), sum(b)
    if na == 0 or nb == 0:
        return DriftTest(name, "Kolmogorov-Smirnov, nothing to compare", 0.0, 1.0)
    d = ca = cb = 0.0
    for x, y in zip(a, b, strict=True):
        ca += x / na
        cb += y / nb
        d = max(d, abs(ca - cb))
    m = math.sqrt(na * nb / (na + nb))
    lam = (m + 0.12 + 0.11 / m) * d
    return DriftTest(name, "Kolmogorov-Smirnov (binned), two-sample", d, kolmogorov_sf(lam))


# --- the records -------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    """The drift check of one profile: ``checked`` (False: ``reason`` says why not),
    ``reference`` (what it was compared with), the family-wise ``alpha`` and the tests."""

    checked: bool
    reason: str = ""
    reference: str = ""
    alpha: float = settings.DRIFT_ALPHA
    tests: tuple[DriftTest, ...] = ()

    @property
    def threshold(self) -> float:
        """Each test's level: ``alpha`` shared by the tests (Bonferroni)."""
        return self.alpha / max(1, len(self.tests))

    @property
    def flagged(self) -> bool:
        return self.checked and any(t.p_value < self.threshold for t in self.tests)

    def p_value(self, name: str) -> float | None:
        return next((t.p_value for t in self.tests if t.name == name), None)

    def line(self) -> str:
        """One line for the summary."""
        if not self.checked:
            return f"drift: not checked ({self.reason})"
        ps = ", ".join(f"{t.name} p={t.p_value:.3g}" for t in self.tests)
        if self.flagged:
            worst = [WHAT.get(t.name, t.name) for t in self.tests if t.p_value < self.threshold]
            what = ", ".join(worst[:-1]) + " and " + worst[-1] if len(worst) > 1 else worst[0]
            return (
                f"DRIFT: {what} {'differ' if len(worst) > 1 else 'differs'} from "
                f"{self.reference} ({ps}; each below {self.threshold:.3g})"
            )
        return f"drift: none against {self.reference} ({ps})"

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "flagged": self.flagged,
            "reason": self.reason,
            "reference": self.reference,
            "alpha": self.alpha,
            "threshold": self.threshold,
            "tests": [t.to_json() for t in self.tests],
        }

    @classmethod
    def from_json(cls, doc: Any, origin: str) -> Drift:
        if not isinstance(doc, dict):
            raise DataFormatError(f"{origin}: drift must be an object")
        tests = doc.get("tests") or []
        if not isinstance(tests, list):
            raise DataFormatError(f"{origin}: drift tests must be a list")
        return cls(
            checked=_typed(doc, "checked", bool, origin),
            reason=_typed(doc, "reason", str, origin),
            reference=_typed(doc, "reference", str, origin),
            alpha=float(_number(doc, "alpha", origin)),
            tests=tuple(
                DriftTest(
                    name=_typed(t, "name", str, origin),
                    test=_typed(t, "test", str, origin),
                    statistic=float(_number(t, "statistic", origin)),
                    p_value=float(_number(t, "p_value", origin)),
                )
                for t in tests
                if isinstance(t, dict)
            ),
        )


@dataclass(frozen=True)
class Profile:
    """What one scoring run (or a model's test set) looked like; see the module doc."""

    model: str
    created: str
    input: str
    total: int
    ok: int
    rejected: int
    failed: int
    labels: tuple[int, ...]
    confidence_edges: tuple[float, ...]
    confidence: tuple[int, ...]
    confidence_sum: float
    drift: Drift | None = None
    format: str = field(default=PROFILE_FORMAT)

    @property
    def rejected_share(self) -> float:
        """Rejected rows among the rows that were read (ok + rejected)."""
        read = self.ok + self.rejected
        return self.rejected / read if read else 0.0

    @property
    def accuracy_estimate(self) -> float | None:
        """The mean top probability of the ok rows: the accuracy the model expects."""
        return self.confidence_sum / self.ok if self.ok else None

    def with_drift(self, drift: Drift) -> Profile:
        return replace(self, drift=drift)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "model": self.model,
            "created": self.created,
            "input": self.input,
            "total": self.total,
            "ok": self.ok,
            "rejected": self.rejected,
            "failed": self.failed,
            "rejected_share": self.rejected_share,
            "accuracy_estimate": self.accuracy_estimate,
            "labels": list(self.labels),
            "confidence_edges": list(self.confidence_edges),
            "confidence": list(self.confidence),
            "confidence_sum": self.confidence_sum,
            "drift": None if self.drift is None else self.drift.to_json(),
        }

    def to_bytes(self) -> bytes:
        import json

        return (json.dumps(self.to_json(), indent=2) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, doc: Any, origin: str) -> Profile:
        """A profile from its JSON; anything malformed is a DataFormatError naming
        ``origin`` (a stored profile may be damaged or hostile)."""
        if not isinstance(doc, dict) or doc.get("format") != PROFILE_FORMAT:
            raise DataFormatError(f"{origin}: not a profile (format {PROFILE_FORMAT!r})")
        labels = _counts(doc, "labels", origin)
        edges = doc.get("confidence_edges")
        if not isinstance(edges, list) or not all(_is_number(e) for e in edges):
            raise DataFormatError(f"{origin}: confidence_edges must be a list of numbers")
        confidence = _counts(doc, "confidence", origin)
        if len(labels) != N_CLASSES or len(confidence) != len(edges) - 1:
            raise DataFormatError(f"{origin}: {N_CLASSES} labels and one count per bin expected")
        drift = doc.get("drift")
        return cls(
            model=_typed(doc, "model", str, origin),
            created=_typed(doc, "created", str, origin),
            input=_typed(doc, "input", str, origin),
            total=_count(doc, "total", origin),
            ok=_count(doc, "ok", origin),
            rejected=_count(doc, "rejected", origin),
            failed=_count(doc, "failed", origin),
            labels=labels,
            confidence_edges=tuple(float(e) for e in edges),
            confidence=confidence,
            confidence_sum=float(_number(doc, "confidence_sum", origin)),
            drift=None if drift is None else Drift.from_json(drift, origin),
        )

    @classmethod
    def from_bytes(cls, data: bytes, origin: str) -> Profile:
        import json

        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise DataFormatError(f"{origin}: not JSON: {e}") from None
        return cls.from_json(doc, origin)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _typed(doc: dict[str, Any], key: str, kind: type, origin: str) -> Any:
    value = doc.get(key)
    if not isinstance(value, kind):
        raise DataFormatError(f"{origin}: {key} must be a {kind.__name__}")
    return value


def _number(doc: dict[str, Any], key: str, origin: str) -> float:
    value = doc.get(key)
    if isinstance(value, int | float) and _is_number(value):
        return float(value)
    raise DataFormatError(f"{origin}: {key} must be a finite number")


def _count(doc: dict[str, Any], key: str, origin: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise DataFormatError(f"{origin}: {key} must be a count (an integer >= 0)")
    return value


def _counts(doc: dict[str, Any], key: str, origin: str) -> tuple[int, ...]:
    value = doc.get(key)
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value
    ):
        raise DataFormatError(f"{origin}: {key} must be a list of counts")
    return tuple(value)


def check_drift(
    profile: Profile, reference: Profile, *, alpha: float = settings.DRIFT_ALPHA
) -> Drift:
    """Compare a run's profile with the model's reference: the three tests (module doc).

    Histograms over other bins than the reference's, or a run with no ok row, are not
    checked (the reason says so)."""
    where = f"the reference ({reference.input})"
    if profile.confidence_edges != reference.confidence_edges:
        return Drift(False, "the confidence bins differ from the reference's", where, alpha)
    if profile.ok + profile.rejected == 0:
        return Drift(False, "no image was read", where, alpha)
    tests = (
        chi_square_homogeneity("labels", profile.labels, reference.labels),
        two_proportions(
            "rejected",
            profile.rejected,
            profile.ok + profile.rejected,
            reference.rejected,
            reference.ok + reference.rejected,
        ),
        ks_binned("confidence", profile.confidence, reference.confidence),
    )
    return Drift(True, "", where, alpha, tests)


def not_checked(reason: str, *, alpha: float = settings.DRIFT_ALPHA) -> Drift:
    return Drift(False, reason, "", alpha)
