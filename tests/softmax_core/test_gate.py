"""The gate decision: floors (and when they apply), non-inferiority on MNIST, a user's
domain weighed as improvement or not worse, messages, advice and margins."""

from __future__ import annotations

import json
import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from softmax_core import gate
from softmax_core.errors import GateFailedError, InvalidInputError


def paired(
    n: int, only_challenger: int, only_champion: int, both_wrong: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(y, challenger, champion)`` on ``n`` images: the first ``only_challenger`` only the
    challenger gets right, the next ``only_champion`` only the champion, the next
    ``both_wrong`` neither."""
    y = np.random.default_rng(n).integers(0, 10, size=n)
    wrong = (y + 1) % 10
    challenger, champion = y.copy(), y.copy()
    a, b, w = (
        only_challenger,
        only_challenger + only_champion,
        only_challenger + only_champion + both_wrong,
    )
    champion[:a] = wrong[:a]
    challenger[a:b] = wrong[a:b]
    challenger[b:w] = champion[b:w] = wrong[b:w]
    return y, challenger, champion


def _preds(y: np.ndarray, wrong: np.ndarray) -> np.ndarray:
    pred = y.copy()
    pred[wrong] = (y[wrong] + 1) % 10
    return pred


@pytest.fixture
def labels() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 10, size=1000)


# --- the floor ---------------------------------------------------------------------------------


def test_floor_met_without_champion_passes(labels: np.ndarray) -> None:
    d = gate.decide(labels, _preds(labels, np.arange(30)), min_accuracy=0.95)
    assert d.passed and d.rule is None and d.shortfall is None and d.advice == ""
    assert d.accuracy == pytest.approx(0.97)
    assert d.champion is None and d.p_worse is None and d.champion_accuracy is None
    assert "no champion" in d.message
    with pytest.raises(ValueError, match="passed"):
        d.error()


def test_floor_not_met_names_rule_margin_and_next_step(labels: np.ndarray) -> None:
    d = gate.decide(labels, _preds(labels, np.arange(80)), min_accuracy=0.95)
    assert not d.passed and d.rule == "floor"
    assert d.shortfall == pytest.approx(0.95 - 0.92)
    assert "0.9200 is below the floor 0.9500 by 0.0300" in d.message
    assert "--min-accuracy" in d.advice
    e = d.error()
    assert isinstance(e, GateFailedError) and e.exit_code == 5
    assert "nothing was published" in str(e) and "next step:" in str(e)


def test_floor_is_inclusive(labels: np.ndarray) -> None:
    assert gate.decide(labels, _preds(labels, np.arange(50)), min_accuracy=0.95).passed


def wilson_half_width(p: float, n: int) -> float:
    """The 95% Wilson score interval's half-width, from its textbook form (Wilson 1927)."""
    z = NormalDist().inv_cdf(0.975)
    centre_spread = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre_spread / (1 + z**2 / n)


@pytest.mark.parametrize("floor", [0.5, 0.9, 0.95, 1.0])
def test_floor_min_images_is_where_the_interval_narrows_to_5_points(floor: float) -> None:
    n = gate.floor_min_images(floor)
    assert wilson_half_width(floor, n) <= 0.05 < wilson_half_width(floor, n - 1)
    assert gate.floor_min_images(0.9) == 141  # the default floor, as the README says


def test_a_domain_floor_applies_only_to_a_holdout_large_enough() -> None:
    small = np.arange(140) % 10  # one image short of what a 0.90 floor needs
    pred = _preds(small, np.arange(28))  # 0.80
    d = gate.decide(small, pred, min_accuracy=0.9, domain="script")
    assert d.passed and not d.floor_applies
    assert "the floor 0.90 needs 141" in d.message
    large = np.arange(141) % 10
    d = gate.decide(large, _preds(large, np.arange(28)), min_accuracy=0.9, domain="script")
    assert d.floor_applies and d.rule == "floor"
    assert "label more images of script, or pass --min-dataset-accuracy 0.80" in d.advice
    # MNIST test is always floored, whatever its size
    assert not gate.decide(small, pred, min_accuracy=0.9).passed


# --- non-inferiority: refused only when shown worse than the margin ---------------------------


def test_mnist_dip_within_the_margin_passes() -> None:
    """The issue's case: 0.26 points lower on 10,000 images (McNemar p = 0.003, refused by
    the old rule), within the 0.5-point margin."""
    y, challenger, champion = paired(10_000, 24, 50, both_wrong=80)
    d = gate.decide(y, challenger, champion_pred=champion, champion="mnist:1")
    assert d.difference == pytest.approx(-0.0026)
    assert d.passed and d.comparison == "within the margin"
    assert d.p_worse is not None and d.p_worse > 0.99
    assert d.lower is not None and -0.005 < d.lower < -0.0026
    assert "-0.26 points (at worst -0.41), within the 0.5-point margin" in d.message


def test_mnist_dip_beyond_the_margin_is_refused() -> None:
    y, challenger, champion = paired(10_000, 20, 120, both_wrong=80)  # -1 point
    d = gate.decide(y, challenger, champion_pred=champion, champion="mnist:3")
    assert d.rule == "non-inferiority" and not d.passed
    assert d.comparison == "worse beyond the margin"
    assert d.p_worse is not None and d.p_worse < 1e-5
    assert d.upper is not None and d.shortfall == pytest.approx(-0.005 - d.upper)
    assert "MNIST accuracy is 1.00 points worse than champion mnist:3, beyond the 0.5" in (
        d.message
    )
    assert "120 images only the champion got right, 20 only the challenger" in d.message
    assert "--data-weight" in d.advice


@pytest.mark.parametrize(
    ("champion_wrong", "says"),
    [
        (1, "+100.00 points (at worst -46.03), higher, not shown better (McNemar p=0.5), not "
            "shown worse than the 0.5-point margin"),
        (3, "+7.50 points (at worst +0.69), higher, not shown better (McNemar p=0.125), within"
            " the 0.5-point margin"),
    ],
)  # fmt: skip
def test_a_gain_too_few_images_show_is_called_higher(champion_wrong: int, says: str) -> None:
    """A challenger right where the champion erred, on too few images for McNemar: its gain
    is a gain, not bare "within the margin" (said of a +100-point gain on one image)."""
    n = 1 if champion_wrong == 1 else 40
    y = np.zeros(n, dtype=np.int64)
    champion = y.copy()
    champion[:champion_wrong] = 1
    d = gate.decide(y, y.copy(), champion_pred=champion, champion="mnist:1", domain="mine")
    assert d.passed and d.comparison != "better"
    assert says in d.message, d.message


def test_a_small_dip_without_evidence_either_way_passes() -> None:
    """0.2 points on 1,000 images: neither shown within the margin nor shown beyond it."""
    y, challenger, champion = paired(1_000, 8, 10)
    d = gate.decide(y, challenger, champion_pred=champion)
    assert d.passed and d.comparison == "no clear difference"
    assert "not shown worse than the 0.5-point margin" in d.message


def test_the_margin_is_a_knob() -> None:
    y, challenger, champion = paired(10_000, 20, 120)
    assert gate.decide(y, challenger, champion_pred=champion, margin=0.02).passed
    y, challenger, champion = paired(10_000, 20, 60)  # -0.4 points: refused at margin 0
    assert gate.decide(y, challenger, champion_pred=champion).passed
    assert gate.decide(y, challenger, champion_pred=champion, margin=0.0).rule == (
        "non-inferiority"
    )


def test_better_challenger_passes() -> None:
    y, challenger, champion = paired(10_000, 100, 5)
    d = gate.decide(y, challenger, champion_pred=champion)
    assert d.passed and d.comparison == "better" and d.p_better is not None and d.p_better < 1e-20


def test_both_rules_can_fail_floor_first() -> None:
    y, challenger, champion = paired(10_000, 0, 600)
    d = gate.decide(y, challenger, champion_pred=champion, champion="m:2")
    assert [f.rule for f in d.failures] == ["floor", "non-inferiority"]
    assert "below the floor" in d.message and "beyond the 0.5-point margin" in d.message


# --- a user's domain: better, or not worse beyond the margin ----------------------------------


def test_domain_much_better_on_a_small_holdout_passes() -> None:
    """The issue's script: champion 0.21, challenger 0.89 on 37 images, under the 0.90
    floor, which does not apply to 37 images."""
    y, challenger, champion = paired(37, 26, 1, both_wrong=3)
    d = gate.decide(
        y, challenger, champion_pred=champion, champion="mnist:1", min_accuracy=0.9, domain="script"
    )
    assert (round(d.accuracy, 2), round(d.champion_accuracy or 0, 2)) == (0.89, 0.22)
    assert d.passed and d.comparison == "better" and not d.floor_applies
    assert d.summary.startswith("champion mnist:1 0.2162 vs challenger 0.8919 on script (37")
    assert "better (McNemar p=" in d.summary and "floor 0.90 not applied" in d.summary


def test_domain_equal_models_on_a_small_holdout_pass() -> None:
    """Two models that read a 60-image holdout perfectly: nothing shows the challenger
    worse, and nothing could show it within 0.5 points (that needs 540 images)."""
    y, challenger, champion = paired(60, 0, 0)
    d = gate.decide(y, challenger, champion_pred=champion, domain="inbox")
    assert d.passed and d.comparison == "no clear difference"
    assert d.lower is not None and d.lower < -0.005


def test_domain_worse_beyond_the_margin_is_refused() -> None:
    y, challenger, champion = paired(40, 0, 8)
    d = gate.decide(y, challenger, champion_pred=champion, champion="mnist:4", domain="forms")
    assert d.rule == "non-inferiority" and d.comparison == "worse beyond the margin"
    assert "it reads forms 20.00 points worse than champion mnist:4" in d.message
    assert "check the labels of forms" in d.advice
    # one image of difference on a small holdout is noise, not a refusal
    y, challenger, champion = paired(40, 0, 1)
    assert gate.decide(y, challenger, champion_pred=champion, domain="forms").passed


def test_refusal_says_what_was_measured_and_what_to_do() -> None:
    y, ch, champ = paired(10_000, 24, 50, both_wrong=80)
    mnist = gate.decide(y, ch, champion_pred=champ, champion="mnist:1")
    y2, ch2, champ2 = paired(200, 80, 0, both_wrong=40)  # 0.80 on 200 images, floor 0.90
    domain = gate.decide(
        y2, ch2, champion_pred=champ2, champion="mnist:1", min_accuracy=0.9, domain="script"
    )
    error = gate.refusal([mnist, domain])
    assert isinstance(error, GateFailedError)
    text = str(error)
    assert text.startswith("gate refused the model on script: accuracy 0.8000 is below the floor")
    assert (
        "champion mnist:1 0.4000 vs challenger 0.8000 on script (200 images): +40.00 points" in text
    )
    assert "; champion mnist:1 0.9896 vs challenger 0.9870 on MNIST (10000 images): -0.26" in text
    assert "within the 0.5-point margin" in text
    assert "next step: label more images of script, or pass --min-dataset-accuracy 0.80" in text
    assert text.endswith("nothing was published")
    assert gate.refusal([mnist]) is None


def test_to_dict_is_json_ready() -> None:
    y, challenger, champion = paired(10_000, 0, 600)
    d = gate.decide(y, challenger, champion_pred=champion, champion="m:2")
    doc = json.loads(json.dumps(d.to_dict()))
    assert doc["passed"] is False and doc["rule"] == "floor"
    assert doc["failures"][1]["rule"] == "non-inferiority" and doc["failures"][1]["advice"]
    assert doc["p_worse"] == pytest.approx(d.p_worse)
    assert doc["difference"] == pytest.approx(-0.06) and doc["margin"] == 0.005
    assert doc["message"] == d.message


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"min_accuracy": 1.5}, "min_accuracy=1.5"),
        ({"min_accuracy": -0.1}, "min_accuracy=-0.1"),
        ({"alpha": 0.0}, "alpha=0.0"),
        ({"alpha": 1.0}, "alpha=1.0"),
        ({"margin": -0.01}, "margin=-0.01"),
        ({"margin": 1.0}, "margin=1.0"),
    ],
)
def test_bad_thresholds_are_refused(labels: np.ndarray, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        gate.decide(labels, labels, **kwargs)


def test_mismatched_champion_predictions_are_refused(labels: np.ndarray) -> None:
    with pytest.raises(InvalidInputError, match="same length"):
        gate.decide(labels, labels, champion_pred=labels[:-1])


# --- the reject option ----------------------------------------------------------------------


def test_a_model_that_rejects_too_many_digits_is_refused_with_what_to_do(
    labels: np.ndarray,
) -> None:
    pred = labels.copy()
    pred[:15] = 10  # 1.5% of the 1,000 digits rejected: errors, and over 1%
    d = gate.decide(labels, pred, min_accuracy=0.9, max_reject_rate=0.01)
    assert not d.passed and d.rule == gate.RULE_REJECT_RATE
    assert d.reject_rate == pytest.approx(0.015) and d.shortfall == pytest.approx(0.005)
    assert (
        "rejects 1.50% of MNIST test as not digits (15 of 1000 images), over the 1% allowed"
        in d.message
    )
    assert "--negatives-share" in d.advice and "--max-reject-rate" in d.advice
    assert "next step:" in str(d.error())
    ok = gate.decide(labels, pred, min_accuracy=0.9, max_reject_rate=0.02)
    assert ok.passed and "rejects 1.50% as not digits" in ok.message
    assert gate.decide(labels, pred, min_accuracy=0.9).reject_rate is None  # not asked
    assert json.loads(json.dumps(d.to_dict()))["reject_rate"] == pytest.approx(0.015)


def test_held_out_negatives_must_be_rejected_enough() -> None:
    pred = np.full(2000, 10)
    pred[:300] = 4  # 85% rejected
    d = gate.decide_negatives(pred, min_rejected=0.9)
    assert not d.passed and d.rule == gate.RULE_NEGATIVES and d.domain == gate.NEGATIVES
    assert d.accuracy == pytest.approx(0.85) and d.shortfall == pytest.approx(0.05)
    assert (
        "rejects 85.0% of 2000 held-out generated non-digits, under the 90% required" in d.message
    )
    assert "--min-negatives-rejected" in d.advice
    refused = str(gate.refusal([gate.decide(pred % 10, pred % 10), d]))
    assert "gate refused the model on held-out negatives" in refused
    assert "nothing was published" in refused
    passed = gate.decide_negatives(pred, min_rejected=0.8)
    assert passed.passed
    assert passed.message == (
        "gate passed on held-out negatives: it rejects 85.0% of 2000 (at least 80% required)"
    )
    with pytest.raises(InvalidInputError, match="min_rejected"):
        gate.decide_negatives(pred, min_rejected=1.5)
