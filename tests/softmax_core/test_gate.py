"""The gate decision: floor, champion comparison (McNemar), messages and margins."""

from __future__ import annotations

import json

import numpy as np
import pytest

from softmax_core import gate
from softmax_core.errors import GateFailedError, InvalidInputError
from softmax_core.metrics import mcnemar_exact


def _preds(y: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    """Predictions equal to ``y`` except at the indices ``wrong`` (shifted by one class)."""
    pred = y.copy()
    pred[wrong] = (y[wrong] + 1) % 10
    return pred


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 10, size=1000)


def test_floor_met_without_champion_passes(labels: np.ndarray) -> None:
    d = gate.decide(labels, _preds(labels, np.arange(30)), min_accuracy=0.95)
    assert d.passed and d.rule is None and d.shortfall is None
    assert d.accuracy == pytest.approx(0.97)
    assert d.champion is None and d.p_value is None and d.champion_accuracy is None
    assert "no champion" in d.message
    with pytest.raises(ValueError, match="passed"):
        d.error()


def test_floor_not_met_names_rule_and_margin(labels: np.ndarray) -> None:
    d = gate.decide(labels, _preds(labels, np.arange(80)), min_accuracy=0.95)
    assert not d.passed
    assert d.rule == "floor"
    assert d.shortfall == pytest.approx(0.95 - 0.92)
    assert "0.9200 is below the floor 0.9500 by 0.0300" in d.message
    e = d.error()
    assert isinstance(e, GateFailedError) and e.exit_code == 5
    assert "nothing was published" in str(e)


def test_floor_is_inclusive(labels: np.ndarray) -> None:
    assert gate.decide(labels, _preds(labels, np.arange(50)), min_accuracy=0.95).passed


def test_significantly_worse_than_champion_is_refused(labels: np.ndarray) -> None:
    champion = _preds(labels, np.arange(20))  # 0.98
    challenger = _preds(labels, np.arange(45))  # 0.955: above the floor, but clearly worse
    d = gate.decide(
        labels, challenger, min_accuracy=0.95, champion_pred=champion, champion="mnist:3"
    )
    test = mcnemar_exact(labels, challenger, champion)
    assert (test.only_a, test.only_b) == (0, 25)
    assert d.rule == "champion" and not d.passed
    assert d.p_value == pytest.approx(test.p_value) and d.p_value < 0.05
    assert d.accuracy == pytest.approx(0.955) and d.champion_accuracy == pytest.approx(0.98)
    assert d.shortfall == pytest.approx(0.025)
    assert (d.only_challenger, d.only_champion) == (0, 25)
    assert "significantly worse than champion mnist:3 (0.9800) by 0.0250" in d.message
    assert "McNemar p=" in d.message


def test_small_dip_that_is_not_significant_passes(labels: np.ndarray) -> None:
    # The two models disagree on 30 images, 14 vs 16: a 0.2-point dip, p far above 0.05.
    champion = _preds(labels, np.r_[np.arange(14), np.arange(100, 110)])
    challenger = _preds(labels, np.r_[np.arange(100, 126)])
    d = gate.decide(labels, challenger, min_accuracy=0.9, champion_pred=champion, champion="m:1")
    assert d.accuracy < d.champion_accuracy  # type: ignore[operator]
    assert d.p_value is not None and d.p_value > 0.05
    assert d.passed
    assert "champion m:1" in d.message


def test_better_challenger_passes_even_when_significant(labels: np.ndarray) -> None:
    champion = _preds(labels, np.arange(45))
    challenger = _preds(labels, np.arange(20))
    d = gate.decide(labels, challenger, min_accuracy=0.95, champion_pred=champion)
    assert d.p_value is not None and d.p_value < 0.05
    assert d.passed


def test_both_rules_can_fail_floor_first(labels: np.ndarray) -> None:
    champion = _preds(labels, np.arange(10))
    challenger = _preds(labels, np.arange(200))
    d = gate.decide(labels, challenger, min_accuracy=0.95, champion_pred=champion, champion="m:2")
    assert [f.rule for f in d.failures] == ["floor", "champion"]
    assert d.rule == "floor"
    assert "below the floor" in d.message and "significantly worse" in d.message


def test_to_dict_is_json_ready(labels: np.ndarray) -> None:
    champion = _preds(labels, np.arange(10))
    d = gate.decide(labels, _preds(labels, np.arange(200)), champion_pred=champion, champion="m:2")
    doc = json.loads(json.dumps(d.to_dict()))
    assert doc["passed"] is False and doc["rule"] == "floor"
    assert doc["failures"][1]["rule"] == "champion"
    assert doc["p_value"] == pytest.approx(d.p_value)
    assert doc["message"] == d.message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_accuracy": 1.5}, "min_accuracy=1.5"),
        ({"min_accuracy": -0.1}, "min_accuracy=-0.1"),
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"alpha": 1.0}, "alpha=1.0"),
    ],
)
def test_bad_thresholds_are_refused(labels: np.ndarray, kwargs: dict, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        gate.decide(labels, labels, **kwargs)


def test_mismatched_champion_predictions_are_refused(labels: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="same length"):
        gate.decide(labels, labels, champion_pred=labels[:-1])
