"""The drift check's arithmetic, against published values, and the profile record."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from softmax_core import settings
from softmax_core.errors import DataFormatError
from softmax_core.monitoring import (
    Drift,
    Profile,
    check_drift,
    chi2_sf,
    chi_square_homogeneity,
    kolmogorov_sf,
    ks_binned,
    normal_sf,
    two_proportions,
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
    ("z", "p"), [(0.0, 0.5), (1.959964, 0.025), (2.575829, 0.005), (-1.644854, 0.95)]
)
def test_normal_sf_matches_the_table(z: float, p: float) -> None:
    assert normal_sf(z) == pytest.approx(p, rel=1e-5)


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


def test_two_proportions_by_hand() -> None:
    # 30/100 vs 20/100: pooled 0.25, se sqrt(.25*.75*.02) = 0.061237, z = 1.633, p = 0.1025
    t = two_proportions("rejected", 30, 100, 20, 100)
    assert t.statistic == pytest.approx(1.63299, rel=1e-4)
    assert t.p_value == pytest.approx(0.10247, rel=1e-3)
    assert two_proportions("rejected", 0, 50, 0, 10_000).p_value == 1.0
    assert two_proportions("rejected", 5, 10, 0, 0).p_value == 1.0


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


def test_check_drift_not_checked() -> None:
    reference = _profile((1000,) * 10, REF_CONF)
    empty = _profile((0,) * 10, (0,) * 11)
    assert not check_drift(empty, reference).checked
    other_bins = Profile(
        **{**reference.__dict__, "confidence_edges": (0.0, 1.0), "confidence": (1,)}
    )
    drift = check_drift(other_bins, reference)
    assert not drift.checked and not drift.flagged and "bins" in drift.line()


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
