"""The drift check's arithmetic, against published values, and the profile record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import fisher_exact as scipy_fisher_exact
from scipy.stats import multivariate_hypergeom

from softmax_core import settings
from softmax_core.errors import DataFormatError
from softmax_core.monitoring import (
    Drift,
    Profile,
    check_drift,
    chi2_sf,
    chi_square_homogeneity,
    fisher_exact,
    kolmogorov_sf,
    ks_binned,
)
from softmax_core.scoring.decode import ScoredBatch
from softmax_core.scoring.profile import ProfileCounts

# --- survival functions against table values -----------------------------------------------


@pytest.mark.parametrize(
    ("x", "df", "p"),
    [
        (3.841459, 1, 0.05),  # the chi-square table's critical values
        (6.634897, 1, 0.01),
        (5.991465, 2, 0.05),
        (16.918978, 9, 0.05),
        (21.665994, 9, 0.01),
        (18.307038, 10, 0.05),
        (2.087901, 9, 0.99),
        (124.342113, 100, 0.05),
        (1.0, 2, math.exp(-0.5)),  # df=2: exactly exp(-x/2)
        (40.0, 2, math.exp(-20.0)),
    ],
)
def test_chi2_sf_matches_the_table(x: float, df: int, p: float) -> None:
    assert chi2_sf(x, df) == pytest.approx(p, rel=1e-5)


def test_chi2_sf_edges() -> None:
    assert chi2_sf(0.0, 3) == 1.0
    assert chi2_sf(1e4, 9) < 1e-300 or chi2_sf(1e4, 9) == 0.0
    with pytest.raises(ValueError, match="df"):
        chi2_sf(1.0, 0)


@pytest.mark.parametrize(
    ("lam", "p"), [(1.2238, 0.10), (1.3581, 0.05), (1.6276, 0.01), (1.9495, 0.001), (0.5, 0.9639)]
)
def test_kolmogorov_sf_matches_the_table(lam: float, p: float) -> None:
    assert kolmogorov_sf(lam) == pytest.approx(p, abs=2e-4)


# --- the three tests ------------------------------------------------------------------------


def test_chi_square_homogeneity_by_hand() -> None:
    # 2x2: [[10, 20], [30, 40]]: expected [[12, 18], [28, 42]] -> 0.7937, df 1, p 0.373
    t = chi_square_homogeneity("labels", (10, 20), (30, 40))
    assert t.statistic == pytest.approx(4 / 12 + 4 / 18 + 4 / 28 + 4 / 42)
    assert t.p_value == pytest.approx(0.3730, abs=1e-4)
    assert "df=1" in t.test
    # columns empty on both sides are dropped; nothing to compare is p = 1
    assert chi_square_homogeneity("l", (10, 0, 20), (30, 0, 40)).p_value == t.p_value
    assert chi_square_homogeneity("l", (0, 0), (3, 4)).p_value == 1.0


def test_small_tables_get_the_permutation_p_value() -> None:
    """Below 5 expected in a cell, the label mix's p is the exact permutation one (the
    run's counts multivariate hypergeometric given the margins), by Monte Carlo: held to
    exact values, by hand and summed over every table with scipy's pmf."""
    # one image, of the rarest digit (4 of 904 images): exactly p = 4/904 = 0.00442, where
    # the chi-square distribution would say 1.5e-48
    one = chi_square_homogeneity("labels", (0, 1, 0, 0), (300, 3, 300, 300))
    assert "Monte-Carlo permutation" in one.test and "df=3" in one.test
    assert chi2_sf(one.statistic, 3) < 1e-47
    assert one.p_value == pytest.approx(4 / 904, abs=4 * math.sqrt(4 / 904 / 9_999))

    a, b = (3, 0, 1, 2), (20, 40, 30, 10)
    t = chi_square_homogeneity("labels", a, b)
    na, cols = sum(a), [x + y for x, y in zip(a, b, strict=True)]
    tables = [
        (i, j, k, na - i - j - k)
        for i in range(na + 1)
        for j in range(na + 1 - i)
        for k in range(na + 1 - i - j)
    ]

    def stat(x: tuple[int, ...]) -> float:
        rest = tuple(c - v for c, v in zip(cols, x, strict=True))
        return chi_square_homogeneity("l", x, rest).statistic

    pmf = multivariate_hypergeom.pmf(tables, m=cols, n=na)
    exact = sum(p for x, p in zip(tables, pmf, strict=True) if stat(x) >= t.statistic - 1e-9)
    assert exact == pytest.approx(0.04502, abs=1e-5)
    # 9,999 draws: within four standard errors of the exact p
    assert t.p_value == pytest.approx(exact, abs=4 * math.sqrt(exact * (1 - exact) / 9_999))
    # seeded: the same table, the same p
    assert chi_square_homogeneity("labels", a, b).p_value == t.p_value


def test_fisher_exact_by_hand_and_against_scipy() -> None:
    # Fisher's lady tasting tea: 3 of 4 cups right, [[3, 1], [1, 3]]: two-sided p = 34/70
    t = fisher_exact("rejected", 3, 4, 1, 4)
    assert t.p_value == pytest.approx(34 / 70, rel=1e-12)
    assert t.statistic == 3.0 and t.test == "Fisher's exact, two-sided"
    for xa, na, xb, nb in [
        (1, 50, 15, 10_000),  # one rejected in 50 MNIST digits: not drift
        (0, 50, 15, 10_000),
        (2, 50, 15, 10_000),
        (1, 1, 15, 10_000),
        (8, 36, 15, 10_000),
        (107, 200, 15, 10_000),
        (30, 100, 20, 100),
        (5, 10, 0, 1),
    ]:
        expected = scipy_fisher_exact([[xa, na - xa], [xb, nb - xb]]).pvalue
        assert fisher_exact("r", xa, na, xb, nb).p_value == pytest.approx(expected, rel=1e-9)
    assert fisher_exact("rejected", 0, 50, 0, 10_000).p_value == 1.0
    assert fisher_exact("rejected", 5, 10, 0, 0).p_value == 1.0


def test_ks_binned() -> None:
    same = ks_binned("confidence", (10, 20, 70), (100, 200, 700))
    assert same.statistic == pytest.approx(0.0, abs=1e-12) and same.p_value == 1.0
    apart = ks_binned("confidence", (70, 20, 10), (10, 20, 70))
    assert apart.statistic == pytest.approx(0.6)
    assert apart.p_value < 1e-10


# --- profiles -------------------------------------------------------------------------------


def _batch(labels: list[int], conf: list[float], errors: list[str | None]) -> ScoredBatch:
    probs = np.zeros((len(labels), 10), dtype=np.float32)
    for i, (k, c) in enumerate(zip(labels, conf, strict=True)):
        if errors[i] is None:
            probs[i] = (1 - c) / 9
            probs[i, k] = c
    return ScoredBatch(
        rels=[f"{i}.png" for i in range(len(labels))],
        labels=np.array([k if e is None else -1 for k, e in zip(labels, errors, strict=True)]),
        probs=probs,
        errors=errors,
    )


class _WithRejects(ScoredBatch):
    """A batch as the reject option will make them: its last row rejected."""

    def statuses(self) -> list[str]:
        out = super().statuses()
        return [*out[:-1], "rejected"]


def test_counts_by_status_bins_and_estimate() -> None:
    counts = ProfileCounts()
    counts.add(_batch([3, 3, 7, 0], [0.999, 0.5, 1.0, 0.0], [None, None, None, "blank: x"]))
    p = counts.profile(model="m:1", input="in", created="t")
    assert (p.total, p.ok, p.rejected, p.failed) == (4, 3, 0, 1)
    assert p.labels == (0, 0, 0, 2, 0, 0, 0, 1, 0, 0)
    edges = settings.PROFILE_CONFIDENCE_EDGES
    assert p.confidence_edges == edges
    assert sum(p.confidence) == 3
    assert p.confidence[edges.index(0.5)] == 1  # [0.5, 0.6)
    assert p.confidence[edges.index(0.999)] == 2  # 0.999 and 1.0: the last bin is closed
    assert p.accuracy_estimate == pytest.approx((0.999 + 0.5 + 1.0) / 3, rel=1e-6)
    assert p.rejected_share == 0.0

    b = _batch([1, 2], [0.9, 0.97], [None, None])
    counts.add(_WithRejects(b.rels, b.labels, b.probs, b.errors))
    p = counts.profile(model="m:1", input="in")
    assert (p.total, p.ok, p.rejected, p.failed) == (6, 4, 1, 1)
    assert p.rejected_share == pytest.approx(1 / 5)
    assert p.failed_share == pytest.approx(1 / 6)


def test_a_run_with_no_image_read_has_no_rejected_share() -> None:
    """Every image failed: its rejected share was 0.0%, as a run of clean digits has."""
    counts = ProfileCounts()
    counts.add(_batch([0, 0], [0.0, 0.0], ["not an image: x", "empty file: 0 bytes"]))
    p = counts.profile(model="m:1", input="in", created="t")
    assert (p.total, p.ok, p.rejected, p.failed) == (2, 0, 0, 2)
    assert p.rejected_share is None and p.accuracy_estimate is None
    assert p.failed_share == 1.0
    doc = json.loads(p.to_bytes())
    assert (doc["rejected_share"], doc["failed_share"]) == (None, 1.0)
    assert Profile.from_bytes(p.to_bytes(), "p") == p


def _profile(labels: tuple[int, ...], confidence: tuple[int, ...], rejected: int = 0) -> Profile:
    return Profile(
        model="m:1",
        created="2026-01-01T00:00:00+00:00",
        input="x",
        total=sum(labels) + rejected,
        ok=sum(labels),
        rejected=rejected,
        failed=0,
        labels=labels,
        confidence_edges=settings.PROFILE_CONFIDENCE_EDGES,
        confidence=confidence,
        confidence_sum=0.9 * sum(labels),
    )


REF_CONF = (5, 5, 5, 10, 20, 30, 50, 60, 100, 300, 9415)


def p_value(drift: Drift, name: str) -> float:
    """The p-value of the test ``name``, which the check must have run."""
    p = drift.p_value(name)
    assert p is not None, (name, [t.name for t in drift.tests])
    return p


def test_check_drift_flags_a_changed_mix_and_not_a_like_one() -> None:
    reference = _profile((1000,) * 10, REF_CONF, rejected=20)
    like = _profile(
        (100, 98, 103, 101, 99, 100, 97, 102, 100, 100), tuple(c // 10 for c in REF_CONF)
    )
    drift = check_drift(like, reference)
    assert drift.checked and not drift.flagged, drift.line()
    assert [t.name for t in drift.tests] == ["labels", "rejected", "confidence"]
    assert drift.threshold == pytest.approx(settings.DRIFT_ALPHA / 3)
    assert drift.line().startswith("drift: none")

    skewed = _profile((400, 50, 50, 50, 50, 50, 50, 50, 50, 150), tuple(c // 10 for c in REF_CONF))
    drift = check_drift(skewed, reference)
    assert drift.flagged and p_value(drift, "labels") < 1e-10
    assert drift.line().startswith("DRIFT: the label mix differs from ")

    unsure = _profile((100,) * 10, (300, 200, 100, 100, 100, 100, 50, 20, 10, 10, 10), rejected=200)
    drift = check_drift(unsure, reference)
    assert p_value(drift, "confidence") < 1e-10
    assert p_value(drift, "rejected") < 1e-10
    assert drift.line().startswith("DRIFT: the rejected share and the confidence differ from ")


def test_a_small_run_like_the_reference_is_not_flagged_a_small_odd_one_is() -> None:
    """The counts of real runs with a model whose reference (MNIST test) rejected 15 of
    10,000: 50 MNIST test digits with one rejected (1 - (1 - 0.0015)^50 = 7% of such
    folders have one), and 36 pictures of which 8 were not digits."""
    reference = _profile(
        (978, 1133, 1028, 1013, 979, 891, 955, 1032, 971, 1005),
        (30, 42, 56, 76, 120, 137, 235, 253, 351, 1085, 7600),
        rejected=15,
    )
    digits = _profile(
        (5, 9, 5, 4, 8, 4, 3, 6, 0, 5), (0, 0, 0, 0, 0, 0, 2, 1, 3, 2, 41), rejected=1
    )
    drift = check_drift(digits, reference)
    assert not drift.flagged, drift.line()
    assert p_value(drift, "rejected") == pytest.approx(0.0768, abs=1e-4)
    assert "Monte-Carlo" in drift.tests[0].test  # 49 ok rows: 3.9 expected fives

    odd = _profile((2, 1, 2, 4, 5, 4, 2, 1, 6, 1), (1, 0, 0, 2, 3, 1, 0, 0, 1, 2, 18), rejected=8)
    drift = check_drift(odd, reference)
    assert drift.flagged and p_value(drift, "rejected") < 1e-14, drift.line()
    # a few images of one digit only: the label mix, by the permutation p-value
    ones = _profile((0, 12, 0, 0, 0, 0, 0, 0, 0, 0), (0,) * 10 + (12,))
    drift = check_drift(ones, reference)
    assert drift.flagged and p_value(drift, "labels") == 1 / 10_000, drift.line()


def test_check_drift_not_checked() -> None:
    reference = _profile((1000,) * 10, REF_CONF)
    empty = _profile((0,) * 10, (0,) * 11)
    assert not check_drift(empty, reference).checked
    other_bins = Profile(
        **{**reference.__dict__, "confidence_edges": (0.0, 1.0), "confidence": (1,)}
    )
    drift = check_drift(other_bins, reference)
    assert not drift.checked and not drift.flagged and "bins" in drift.line()


def test_a_run_with_no_ok_row_has_only_its_rejected_share_tested() -> None:
    """Every image rejected: it said "labels p=1 ... confidence p=1", as if they had been
    compared; the label mix and the confidence were not checked, and the line says so."""
    reference = _profile((1000,) * 10, REF_CONF, rejected=15)
    junk = _profile((0,) * 10, (0,) * 11, rejected=40)
    drift = check_drift(junk, reference)
    assert drift.checked and [t.name for t in drift.tests] == ["rejected"]
    assert drift.p_value("labels") is None and drift.p_value("confidence") is None
    assert drift.threshold == pytest.approx(settings.DRIFT_ALPHA / 3)  # still one of three
    assert drift.flagged
    assert drift.line() == (  # scipy.stats.fisher_exact([[40, 0], [15, 10000]]): 8.43e-100
        "DRIFT: the rejected share differs from the reference (x) (rejected p=8.43e-100; "
        "each below 0.00333; the label mix and the confidence not checked: no ok rows)"
    )
    one = check_drift(_profile((0,) * 10, (0,) * 11, rejected=1), reference)
    assert p_value(one, "rejected") == pytest.approx(16 / 10_016)  # 1 of the 16 in this run
    assert "labels" not in one.line() and one.line().endswith("not checked: no ok rows)")
    again = Profile.from_bytes(junk.with_drift(drift).to_bytes(), "p.json")
    assert again.drift == drift and again.drift.line() == drift.line()


def test_profile_round_trips_and_refuses_junk() -> None:
    reference = _profile((1000,) * 10, REF_CONF, rejected=5)
    p = reference.with_drift(check_drift(_profile((100,) * 10, REF_CONF), reference))
    again = Profile.from_bytes(p.to_bytes(), "p.json")
    assert again == p
    doc = json.loads(p.to_bytes())
    assert doc["accuracy_estimate"] == pytest.approx(0.9)
    assert doc["drift"]["tests"][0]["name"] == "labels"
    for bad in (
        b"not json",
        b"[]",
        json.dumps({**doc, "format": "other"}).encode(),
        json.dumps({**doc, "labels": [1, 2]}).encode(),
        json.dumps({**doc, "ok": -1}).encode(),
        json.dumps({**doc, "confidence_sum": "NaN"}).encode(),
        json.dumps({**doc, "drift": {"checked": "yes"}}).encode(),
    ):
        with pytest.raises(DataFormatError, match=r"p\.json"):
            Profile.from_bytes(bad, "p.json")
