"""The numbers behind the report, on small arrays made here."""

from __future__ import annotations

import numpy as np
import pytest

from softmax_core.errors import InvalidInputError
from softmax_core.model import Model
from softmax_core.preprocess import Hog, Scale, Steps
from softmax_core.report import analysis


def test_reliability_bins_and_ece() -> None:
    # confidences 0.95 (x2, one right), 0.55 (x2, both right): ECE = 0.5*0.45 + 0.5*0.45
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.55, 0.45]])
    correct = np.array([True, False, True, True])
    rel = analysis.reliability(probs, correct, bins=10)
    assert rel.count.tolist() == [0, 0, 0, 0, 0, 2, 0, 0, 0, 2]
    assert rel.accuracy[9] == pytest.approx(0.5) and rel.accuracy[5] == pytest.approx(1.0)
    assert rel.confidence[9] == pytest.approx(0.95)
    assert np.isnan(rel.accuracy[0])
    assert rel.ece == pytest.approx(0.45)


def test_reliability_puts_confidence_one_in_the_top_bin() -> None:
    rel = analysis.reliability(np.array([[1.0, 0.0]]), np.array([True]))
    assert rel.count[-1] == 1 and rel.ece == pytest.approx(0.0)


def test_the_report_bins_confidence_as_evaluate_does() -> None:
    rel = analysis.reliability(np.array([[0.9, 0.1]]), np.array([True]))
    assert len(rel.count) == 15 and rel.ece == pytest.approx(0.1)


def test_confused_pairs_largest_first_without_the_diagonal() -> None:
    cm = np.diag([50] * 10)
    cm[4, 9], cm[7, 2], cm[3, 5] = 9, 4, 6
    assert analysis.confused_pairs(cm) == [(4, 9, 9), (3, 5, 6), (7, 2, 4)]
    assert analysis.confused_pairs(np.diag([5] * 10)) == []


def test_examples_most_confidently_wrong_first() -> None:
    probs = np.full((4, 10), 0.01, np.float32)
    probs[:, 3] = [0.2, 0.9, 0.5, 0.1]
    ev = analysis.Evaluation(
        probs=probs,
        pred=np.array([3, 3, 3, 1]),
        correct=np.array([False, False, False, True]),
        confusion=np.zeros((10, 10), np.int64),
        uncalibrated=probs,
    )
    assert analysis.examples(ev, np.array([8, 8, 8, 1]), 8, 3, 2).tolist() == [1, 2]


def test_evaluate_refuses_mismatched_labels_and_features() -> None:
    images = np.zeros((3, 28, 28), np.uint8)
    pixels = Steps.named("pixels")
    model = Model(W=np.zeros((784, 10), np.float32), b=np.zeros(10, np.float32), steps=pixels)
    with pytest.raises(InvalidInputError, match="one label per image"):
        analysis.evaluate(model, images, [1, 2])
    # weights that do not fit the features are refused when the model is made: evaluate
    # never sees them
    with pytest.raises(InvalidInputError, match=r"expected float32 W \(784, k\)"):
        Model(W=np.zeros((392, 10), np.float32), b=np.zeros(10, np.float32), steps=pixels)


def test_hog_layout_from_the_recorded_step() -> None:
    layout = analysis.hog_layout(Steps((Scale(), Hog(cell=4, bins=8, signed=False))))
    assert layout is not None
    assert (layout.cells_y, layout.cells_x, layout.bins, layout.cell) == (7, 7, 8, 4)
    assert layout.span == pytest.approx(np.pi)
    assert analysis.hog_layout(Steps.named("hog")).span == pytest.approx(2 * np.pi)  # type: ignore[union-attr]
    other = analysis.hog_layout(Steps((Scale(), Hog(cell=14, bins=9))))
    assert other is not None and (other.cells_y, other.bins, other.cell) == (2, 9, 14)
    # a layout that disagrees with the weights, or a step with a bad parameter, cannot be
    # recorded any more (Model and Hog refuse them: tests/softmax_core/test_hog.py)
    assert analysis.hog_layout(Steps.named("deskew")) is None
    assert analysis.hog_layout(Steps.named("pixels")) is None


def test_domain_accuracy() -> None:
    correct = np.array([True, False, True, True])
    got = analysis.domain_accuracy(correct, ["a", "a", "b", "b"])
    assert got == {"a": (0.5, 2), "b": (1.0, 2)}
    with pytest.raises(InvalidInputError, match="one domain label per image"):
        analysis.domain_accuracy(correct, ["a"])
