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
