"""A watch on every scored batch: the run's profile, and a drift check against the model's
reference profile. Pure: numbers in, frozen records out; no I/O, no scipy.

A :class:`Profile` is what a scoring run (or the model's test set) looked like::

    model, created, input          which model, when, what was scored
    total, ok, rejected, failed    rows by status (rejected: status=rejected rows, 0 for
                                   models without a reject option; failed: status=error);
                                   ``rejected_share`` is of the rows read (None: none was),
                                   ``failed_share`` of all rows
    labels                         predicted digits of the ok rows, counts 0..9
    confidence_edges, confidence   a histogram of the ok rows' top probability over fixed
                                   bins (``settings.PROFILE_CONFIDENCE_EDGES``)
    confidence_sum                 the sum of those probabilities: ``accuracy_estimate`` is
                                   their mean, what the model expects its accuracy to be
                                   (as good as its calibration)
    drift                          the :class:`Drift` check against the reference, if any

The model's reference profile is the same record computed on MNIST test through the model
(``softmax_core.scoring.profile.reference_profile``). :func:`check_drift` compares a
run's profile with it by three named two-sample tests, each with a p-value, valid at
any count (a folder of 5 images as well as 10,000):

- ``labels``: Pearson's chi-square test of homogeneity on the 2×10 table of predicted
  digits (run vs reference; digits absent from both dropped), df = digits - 1; its p from
  the chi-square distribution when every expected count is at least 5 (Cochran's rule,
  :data:`MIN_EXPECTED`), otherwise the exact permutation p-value by seeded Monte Carlo
  (:data:`PERMUTATIONS` tables drawn given the margins; deterministic, at least 1e-4);
- ``rejected``: Fisher's exact test (two-sided) on the 2×2 table of rejected and ok rows;
- ``confidence``: the two-sample Kolmogorov–Smirnov test on the binned top probability
  (the largest gap between the two cumulative histograms; the asymptotic Kolmogorov
  distribution with Stephens' small-sample correction; on bins it is conservative).

The label mix and the confidence count the ok rows: a run whose every image was rejected
has only its rejected share tested, and its line says the other two were not checked.

Drift is flagged when a p-value is below ``alpha / 3`` (Bonferroni over the three tests:
the chance of a false flag on a run like the reference is at most ``alpha``). Measured by
``benchmarks/drift.py`` (10,000 random subsets of a real run of MNIST test at each size,
against the model's reference): flagged on 0.17-0.65% of them at 5 to 1,000 images.
Before the exact tests the pooled two-proportion z-test on the rejected share flagged up
to 7.5% (at 50: one rejected image in 50 got p = 0.001, exactly 0.077); the asymptotic
chi-square stayed near its level on MNIST's even mix, but one image of a digit the
reference has 4 of in 904 got p = 1.5e-48 where the exact p is 0.0044.

The chi-square's survival function is written here from the textbook formula, the
regularised upper incomplete gamma function ``Q(df/2, x/2)`` (series below ``a + 1``,
Lentz's continued fraction above: Numerical Recipes §6.2); the Kolmogorov distribution's
as its alternating series ``2 Σ (-1)^(k-1) exp(-2 k² λ²)``; Fisher's hypergeometric
probabilities from ``math.lgamma``. Tests hold them to published table values and to scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import settings
from softmax_core.errors import DataFormatError

PROFILE_FORMAT = "softmax-pipe/profile@1"
N_CLASSES = 10
TESTS = ("labels", "rejected", "confidence")
# What each test compares, as the summary's DRIFT line names it.
WHAT = {"labels": "the label mix", "rejected": "the rejected share", "confidence": "the confidence"}
NO_OK_ROWS = "the label mix and the confidence not checked: no ok rows"

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


# The label mix's chi-square is read from the chi-square distribution only when every
# expected count of the 2×k table is at least this (Cochran's rule); below it the
# distribution is not the statistic's, and the p-value is a Monte-Carlo permutation one.
MIN_EXPECTED = 5.0
# Monte-Carlo tables for the label mix (p >= 1/(PERMUTATIONS + 1) = 1e-4, well under the
# level) and their fixed seed: the same profile always gets the same p-value.
PERMUTATIONS = 9_999
PERMUTATION_SEED = 20_261_207


def _chi_square_stats(x: NDArray[np.int64], c: NDArray[np.int64], na: int, nb: int) -> Any:
    """Pearson's X² of 2×k tables with column totals ``c``, the run's row ``x`` (..., k)."""
    n = na + nb
    ea, eb = na * c / n, nb * c / n
    return (((x - ea) ** 2 / ea) + ((c - x - eb) ** 2 / eb)).sum(axis=-1)


def chi_square_homogeneity(name: str, a: tuple[int, ...], b: tuple[int, ...]) -> DriftTest:
    """Pearson's chi-square on the 2×k table of counts ``a`` (the run) and ``b`` (the
    reference); columns empty in both are dropped. Nothing to compare: p = 1.

    Every expected count at least :data:`MIN_EXPECTED`: p from the chi-square distribution
    with df = k - 1. Otherwise the exact permutation distribution of X² given the table's
    margins (the run's counts multivariate-hypergeometric) by :data:`PERMUTATIONS` seeded
    draws: p = (1 + #{X²* >= X²}) / (PERMUTATIONS + 1)."""
    cols = [(x, y) for x, y in zip(a, b, strict=True) if x + y > 0]
    na, nb = sum(x for x, _ in cols), sum(y for _, y in cols)
    if na == 0 or nb == 0 or len(cols) < 2:
        return DriftTest(name, "chi-square homogeneity, nothing to compare", 0.0, 1.0)
    x = np.array([x for x, _ in cols], dtype=np.int64)
    c = np.array([x + y for x, y in cols], dtype=np.int64)
    stat = float(_chi_square_stats(x, c, na, nb))
    df = len(cols) - 1
    if min(na, nb) * c.min() / (na + nb) >= MIN_EXPECTED:
        return DriftTest(name, f"chi-square homogeneity, df={df}", stat, chi2_sf(stat, df))
    rng = np.random.default_rng(PERMUTATION_SEED)
    tables = rng.multivariate_hypergeometric(c, na, size=PERMUTATIONS)
    as_far = int((_chi_square_stats(tables, c, na, nb) >= stat * (1 - 1e-9)).sum())
    return DriftTest(
        name,
        f"chi-square homogeneity, df={df}, Monte-Carlo permutation ({PERMUTATIONS} tables)",
        stat,
        (1 + as_far) / (PERMUTATIONS + 1),
    )


def fisher_exact(name: str, xa: int, na: int, xb: int, nb: int) -> DriftTest:
    """Fisher's exact test, two-sided, of ``xa/na`` against ``xb/nb``: given the margins,
    the run's count X is hypergeometric; p is the probability of every count no more
    likely than ``xa`` (relative tolerance 1e-7, as R and scipy). The statistic is ``xa``.
    An empty side: p = 1."""
    if na == 0 or nb == 0:
        return DriftTest(name, "Fisher's exact, nothing to compare", 0.0, 1.0)
    k, n = xa + xb, na + nb
    support = range(max(0, k - nb), min(k, na) + 1)

    def log_choose(m: int, j: int) -> float:
        return math.lgamma(m + 1) - math.lgamma(j + 1) - math.lgamma(m - j + 1)

    log_pmf = np.array(
        [log_choose(k, j) + log_choose(n - k, na - j) for j in support]
    ) - log_choose(n, na)
    pmf = np.exp(log_pmf)
    observed = pmf[xa - support.start]
    p = float(pmf[pmf <= observed * (1 + 1e-7)].sum())
    return DriftTest(name, "Fisher's exact, two-sided", float(xa), min(1.0, p))


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
    """The drift check of one profile: ``checked`` (False: ``reason`` says why not;
    True with a ``reason``: what could not be tested), ``reference`` (what it was compared
    with), the family-wise ``alpha`` and the tests that ran."""

    checked: bool
    reason: str = ""
    reference: str = ""
    alpha: float = settings.DRIFT_ALPHA
    tests: tuple[DriftTest, ...] = ()

    @property
    def threshold(self) -> float:
        """Each test's level: ``alpha`` shared by the three tests (Bonferroni), the same
        when only some of them could run."""
        return self.alpha / len(TESTS)

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
        partly = f"; {self.reason}" if self.reason else ""
        if self.flagged:
            worst = [WHAT.get(t.name, t.name) for t in self.tests if t.p_value < self.threshold]
            what = ", ".join(worst[:-1]) + " and " + worst[-1] if len(worst) > 1 else worst[0]
            return (
                f"DRIFT: {what} {'differ' if len(worst) > 1 else 'differs'} from "
                f"{self.reference} ({ps}; each below {self.threshold:.3g}{partly})"
            )
        return f"drift: none against {self.reference} ({ps}{partly})"

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
    def rejected_share(self) -> float | None:
        """Rejected rows among the rows that were read (ok + rejected); None when no image
        was read (every one failed): a share of nothing is not 0%."""
        read = self.ok + self.rejected
        return self.rejected / read if read else None

    @property
    def failed_share(self) -> float | None:
        """Failed rows (status=error: not an image, unreadable) among all rows; None
        when there were none."""
        return self.failed / self.total if self.total else None

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
            "failed_share": self.failed_share,
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

    Histograms over other bins than the reference's, or a run with no image read, are
    not checked (the reason says so). A run with no ok row (every image rejected) has only
    its rejected share tested: the label mix and the confidence have nothing to count,
    and the reason says they were not checked."""
    where = f"the reference ({reference.input})"
    if profile.confidence_edges != reference.confidence_edges:
        return Drift(False, "the confidence bins differ from the reference's", where, alpha)
    if profile.ok + profile.rejected == 0:
        return Drift(False, "no image was read", where, alpha)
    rejected = fisher_exact(
        "rejected",
        profile.rejected,
        profile.ok + profile.rejected,
        reference.rejected,
        reference.ok + reference.rejected,
    )
    if profile.ok == 0:
        return Drift(True, NO_OK_ROWS, where, alpha, (rejected,))
    tests = (
        chi_square_homogeneity("labels", profile.labels, reference.labels),
        rejected,
        ks_binned("confidence", profile.confidence, reference.confidence),
    )
    return Drift(True, "", where, alpha, tests)


def not_checked(reason: str, *, alpha: float = settings.DRIFT_ALPHA) -> Drift:
    return Drift(False, reason, "", alpha)
