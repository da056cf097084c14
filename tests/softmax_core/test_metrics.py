"""Metrics against scikit-learn and scipy, computed independently."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import confusion_matrix as sk_confusion
from sklearn.metrics import precision_score, recall_score

from softmax_core import metrics
from softmax_core.errors import InvalidInputError


def test_report_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 500)
    pred = np.where(rng.random(500) < 0.8, y, rng.integers(0, 10, 500))
    pred[pred == 7] = 3  # class 7 never predicted: precision 0
    rep = metrics.report(y, pred)
    assert rep.accuracy == pytest.approx(np.mean(y == pred)) and rep.n == 500
    np.testing.assert_array_equal(rep.confusion, sk_confusion(y, pred, labels=range(10)))
    prec = precision_score(y, pred, average=None, labels=range(10), zero_division=0)
    rec = recall_score(y, pred, average=None, labels=range(10), zero_division=0)
    assert [r.precision for r in rep.per_class] == pytest.approx(prec)
    assert [r.recall for r in rep.per_class] == pytest.approx(rec)
    assert [r.digit for r in rep.per_class] == list(range(10))
    assert sum(r.support for r in rep.per_class) == 500


def test_report_json_is_the_dict_evaluate_returned_before() -> None:
    """The shape stored in manifests (``metrics``), Prefect artifacts and ``evaluate --json``:
    the same keys in the same order, plain JSON numbers."""
    rep = metrics.report([0, 0, 1, 2], [0, 1, 1, 1], n_classes=3)
    old = {
        "accuracy": 0.5,
        "n": 4,
        "per_class": [
            {"class": 0, "precision": 1.0, "recall": 0.5, "support": 2},
            {"class": 1, "precision": 1 / 3, "recall": 1.0, "support": 1},
            {"class": 2, "precision": 0.0, "recall": 0.0, "support": 1},  # never predicted
        ],
        "confusion": [[1, 1, 0], [0, 1, 0], [0, 1, 0]],
    }
    assert json.dumps(rep.to_json()) == json.dumps(old)
    assert metrics.EvaluationReport.from_json(old) == rep
    measured = metrics.report([0, 0, 1, 2], [0, 1, 1, 1], n_classes=3, data_digest="ab" * 32)
    assert json.dumps(measured.to_json()) == json.dumps({**old, "data_digest": "ab" * 32})
    assert (
        metrics.EvaluationReport.from_json(json.loads(json.dumps(measured.to_json()))) == measured
    )


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (3, 1), (10, 25), (40, 60), (120, 80)])
def test_mcnemar_exact_matches_scipy_binomtest(only_a: int, only_b: int) -> None:
    n_same = 50
    y = np.zeros(only_a + only_b + n_same, int)
    pred_a = np.concatenate([np.zeros(only_a), np.ones(only_b), np.zeros(n_same)]).astype(int)
    pred_b = np.concatenate([np.ones(only_a), np.zeros(only_b), np.zeros(n_same)]).astype(int)
    res = metrics.mcnemar_exact(y, pred_a, pred_b)
    assert (res.only_a, res.only_b) == (only_a, only_b)
    expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert res.p_value == pytest.approx(expected, rel=1e-9)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="same length"):
        metrics.accuracy([1, 2], [1])
    with pytest.raises(InvalidInputError, match="empty"):
        metrics.accuracy([], [])
    with pytest.raises(InvalidInputError, match="prediction 12"):
        metrics.confusion_matrix([1, 2], [1, 12])


def test_paired_score_interval_matches_the_published_tango_example() -> None:
    """Cavo et al. (2012), the paired table [[59, 6], [16, 80]] of Fagerland, Lydersen and
    Laake's *Statistical Analysis of Contingency Tables* (ch. 8): Tango's asymptotic score
    95% interval for the difference is -0.1240 to -0.0054 (R contingencytables, tested)."""
    d = metrics.PairedDifference(n=161, only_a=6, only_b=16)
    assert d.difference == pytest.approx(-0.0621, abs=5e-5)
    assert d.lower(0.025) == pytest.approx(-0.1240, abs=5e-5)
    assert d.upper(0.025) == pytest.approx(-0.0054, abs=5e-5)
    # the bounds invert the one-sided tests
    assert d.p_above(d.lower(0.025)) == pytest.approx(0.025, abs=1e-6)
    assert d.p_below(d.upper(0.025)) == pytest.approx(0.025, abs=1e-6)


@pytest.mark.parametrize(("only_a", "only_b"), [(3, 1), (10, 25), (40, 60), (120, 80)])
def test_paired_score_at_zero_is_mcnemars_z(only_a: int, only_b: int) -> None:
    d = metrics.PairedDifference(n=1000, only_a=only_a, only_b=only_b)
    assert d.score(0.0) == pytest.approx((only_a - only_b) / np.sqrt(only_a + only_b))


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (5, 0), (3, 1), (10, 25), (120, 80)])
def test_p_better_is_scipys_one_sided_binomial_test(only_a: int, only_b: int) -> None:
    d = metrics.PairedDifference(n=500, only_a=only_a, only_b=only_b)
    expected = (
        1.0
        if only_a + only_b == 0
        else binomtest(only_a, only_a + only_b, 0.5, alternative="greater").pvalue
    )
    assert d.p_better() == pytest.approx(expected, rel=1e-9)


def test_paired_counts_must_fit() -> None:
    with pytest.raises(InvalidInputError, match="do not fit"):
        metrics.PairedDifference(n=5, only_a=4, only_b=2)
    with pytest.raises(InvalidInputError, match="theta0"):
        metrics.PairedDifference(n=5, only_a=1, only_b=1).score(1.0)


# --- calibration error ---------------------------------------------------------------------


def test_expected_calibration_error_by_hand() -> None:
    # 15 bins of width 1/15. Top probabilities and how many of each are right:
    #   0.99 x2, both right       bin 14 (0.933, 1]      gap |1.0 - 0.99| = 0.01
    #   0.9  x4, 3 right          bin 13 (0.867, 0.933]  gap |0.75 - 0.9| = 0.15
    #   0.7  x2, none right       bin 10 (0.667, 0.733]  gap |0.0 - 0.7|  = 0.7
    #   0.5  x2, one right        bin 7  (0.467, 0.533]  gap |0.5 - 0.5|  = 0
    # ECE = (2 * 0.01 + 4 * 0.15 + 2 * 0.7 + 2 * 0) / 10 = 0.202
    probs = np.array(
        [
            [0.99, 0.005, 0.005],
            [0.005, 0.005, 0.99],  # the top class need not be the first
            [0.9, 0.05, 0.05],
            [0.9, 0.05, 0.05],
            [0.9, 0.05, 0.05],
            [0.9, 0.05, 0.05],
            [0.7, 0.2, 0.1],
            [0.7, 0.2, 0.1],
            [0.5, 0.3, 0.2],
            [0.5, 0.3, 0.2],
        ]
    )
    y = np.array([0, 2, 0, 0, 0, 1, 1, 2, 0, 1])
    assert metrics.expected_calibration_error(probs, y) == pytest.approx(0.202)
    rel = metrics.reliability(probs, probs.argmax(axis=1) == y)
    assert len(rel.count) == metrics.ECE_BINS == 15
    assert {i: int(c) for i, c in enumerate(rel.count) if c} == {7: 2, 10: 2, 13: 4, 14: 2}
    assert rel.accuracy[13] == pytest.approx(0.75) and rel.confidence[13] == pytest.approx(0.9)
    assert np.isnan(rel.accuracy[0]) and np.isnan(rel.confidence[0])
    # five bins: 0.99 and 0.9 share (0.8, 1] (5 of 6 right, mean confidence 5.58 / 6 =
    # 0.93), 0.7 is in (0.6, 0.8], 0.5 in (0.4, 0.6]: (6 * 0.0967 + 2 * 0.7 + 0) / 10
    assert metrics.expected_calibration_error(probs, y, bins=5) == pytest.approx(0.198)


def test_calibrated_probabilities_have_a_small_error_and_confident_wrong_ones_a_large() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(0.5, 1.0, 50000)
    right = rng.random(50000) < conf  # right exactly as often as it says
    probs = np.stack([conf, 1 - conf], axis=1)
    y = np.where(right, 0, 1)
    assert metrics.expected_calibration_error(probs, y) < 0.01
    assert metrics.expected_calibration_error(probs, 1 - y) > 0.5


@pytest.mark.parametrize(
    ("probs", "y"),
    [
        (np.ones((3, 2)) / 2, np.zeros(2, int)),
        (np.ones(3), np.zeros(3, int)),
        (np.ones((0, 2)), np.zeros(0, int)),
    ],
)
def test_expected_calibration_error_refuses_shapes_that_do_not_fit(
    probs: np.ndarray, y: np.ndarray
) -> None:
    with pytest.raises(InvalidInputError, match="shape"):
        metrics.expected_calibration_error(probs, y)


def test_evaluation_report_carries_both_calibration_errors_through_json() -> None:
    r = metrics.report([0, 1, 1], [0, 1, 0])
    assert "ece" not in r.to_json()
    import dataclasses

    r = dataclasses.replace(r, ece=0.01, ece_uncalibrated=0.03)
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["ece"] == 0.01 and doc["ece_uncalibrated"] == 0.03
    assert metrics.EvaluationReport.from_json(doc) == r


def test_an_eleven_class_report_says_its_reject_rate() -> None:
    y = np.array([0, 1, 2, 3])
    pred = np.array([0, 10, 2, 10])  # two digits rejected ("not a digit", class 10)
    rep = metrics.report(y, pred, 11)
    assert rep.reject_rate == 0.5
    assert rep.to_json()["reject_rate"] == 0.5
    assert rep.accuracy == 0.5  # a rejected digit is an error
    ten = metrics.report(y, np.array([0, 1, 2, 2]))
    assert ten.reject_rate is None and "reject_rate" not in ten.to_json()
