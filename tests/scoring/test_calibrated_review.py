"""``--min-confidence 0.95`` means what it says: the review queue takes the images scored
below 0.95, and of the rest (calibrated confidence >= 0.95) at least 95% are right.

The real MNIST test digits as PNG files, scored the way ``softmax-pipe score --review``
scores them (decoded, prepared as users' images are), with the default model trained on
the real training split, calibrated as training calibrates it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from softmax_core import scoring
from softmax_core.metrics import expected_calibration_error
from softmax_core.model import Model
from softmax_core.requests import Output, Performance, Review, ScoringRequest
from softmax_core.softmax import softmax
from tests import scoring_data as sd

SURE = 0.95


@pytest.mark.slow
def test_min_confidence_095_means_95_percent_right_on_mnist_test(
    mnist_dir: Path, session_cache: Path, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    ds = sd.mnist(mnist_dir, session_cache)
    model = Model.load(sd.trained_model(mnist_dir, session_cache, tmp_path_factory))
    assert model.temperature != 1.0  # trained as `softmax-pipe train` trains: calibrated
    folder = sd.write_pngs(tmp_path / "mnist", ds.x_test, ds.y_test)
    queue, out = tmp_path / "queue", tmp_path / "scores.jsonl"
    request = ScoringRequest(
        str(folder),
        output=Output(str(out), format="jsonl", probs=True),
        performance=Performance(workers=2),
        review=Review(min_confidence=SURE, queue=str(queue)),
    )
    summary = scoring.score(request, model)
    rows = sd.read_rows(out.read_text(), "jsonl")
    # the default model can say "not a digit" (11 classes): a few MNIST digits are rejected
    # (the gate allows 1%), each with its probabilities; every other row is read
    assert model.can_reject and len(rows) == 10000
    status = np.array([r["status"] for r in rows])
    ok = status == "ok"
    assert set(status) <= {"ok", "rejected"} and 0 < (~ok).sum() <= 0.01 * len(rows)
    confidence = np.array([r["confidence"] for r in rows])
    right = np.array(
        [r["label"] is not None and r["label"] == sd.label_of(r["path"]) for r in rows]
    )
    sure = ok & (confidence >= SURE)

    # what the queue holds: every image read below 0.95 and every rejected one, nothing else
    assert summary.review is not None
    assert summary.low_confidence == int((ok & ~sure).sum()) > 0
    assert summary.review.queued == int((~sure).sum()) == summary.low_confidence + (~ok).sum()
    assert len(list((queue / "unlabelled").iterdir())) == int((~sure).sum())
    # what is not queued is right at least as often as its confidence says
    assert right[sure].mean() >= SURE, f"{right[sure].mean():.4f} of {sure.sum()} right"
    # and the probabilities as a whole are calibrated: ECE (15 bins) within 1% (a rejected
    # digit counts as wrong: its top class is "not a digit")
    probs = np.array([[r[f"p{k}"] for k in range(10)] + [r["p_reject"]] for r in rows])
    labels = np.array([sd.label_of(r["path"]) for r in rows])
    # each row's probabilities: a read row's label is its top digit, a rejected row's top
    # class is "not a digit"
    assert np.array_equal(
        probs[ok, :10].argmax(axis=1), [r["label"] for r in rows if r["label"] is not None]
    )
    assert (probs[~ok].argmax(axis=1) == 10).all()
    assert expected_calibration_error(probs, labels) <= 0.01

    # The checks have teeth: the same scores made overconfident (T = 0.2) claim 0.999 for
    # images they get right less often than that; made timid (4 T), they miss the ECE bound.
    # (On MNIST test, right 99% of the time, no temperature brings the images above 0.95
    # under 95% right: the bound that fails first there is the ECE.)
    # softmax(log p * T / T') is softmax(Z / T').
    with np.errstate(divide="ignore"):
        sharp = softmax(np.log(probs) * model.temperature / 0.2)
        timid = softmax(np.log(probs) / 4)
    assert right[sharp.max(axis=1) >= 0.999].mean() < 0.999
    assert expected_calibration_error(timid, labels) > 0.01
