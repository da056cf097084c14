"""The review sheet: a contact sheet of prepared test digits, checked in headless Chromium."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from softmax_core.errors import InvalidInputError
from softmax_core.mnist import Dataset
from softmax_core.model import Model
from softmax_core.report import ReviewItem, render_review_sheet
from softmax_core.scoring.review import queued_name
from softmax_core.words import cut_percent
from tests.report import chromium


def _items(mnist: Dataset, model: Model, n: int, below: float = 0.9) -> list[ReviewItem]:
    X = model.features(mnist.x_test[:n])
    probs = model.predict_proba(mnist.x_test[:n])
    labels = np.argmax(probs[:, :10], axis=1)
    return [
        ReviewItem(
            name=f"inbox/digit-{i:03d}.png",
            image=X[i].reshape(28, 28),
            probs=probs[i],
            label=int(labels[i]),
            confidence=float(probs[i, labels[i]]),
            status="ok",
            unsure=float(probs[i, labels[i]]) < below,
        )
        for i in range(n)
    ]


def test_sheet_lists_every_image_with_its_top_three(mnist: Dataset, weak: Model) -> None:
    items = _items(mnist, weak, 12)
    html = render_review_sheet(items, model_ref="mnist:1", min_confidence=0.9)
    assert html.count('class="card') == 12 and "scored by mnist:1" in html
    first = items[0].probs
    top = np.argsort(-first)[:3]
    card = html.split('class="card')[1]
    assert [int(d) for d in re.findall(r'<div class="prob"><b>(\d)</b>', card)] == top.tolist()
    assert cut_percent(float(first[top[0]])) in card and "digit-000.png" in card
    unsure = sum(i.unsure for i in items)  # as the scoring counted: the card says so
    assert html.count('class="card check"') == unsure
    assert f"<b>{unsure}</b><span>below confidence 0.9</span>" in html
    assert f"confidence {items[0].confidence:.6f} · ok" in card
    assert "<script" not in html and "http" not in html


def test_a_confidence_under_the_threshold_never_reads_as_at_it() -> None:
    """0.949573 at --min-confidence 0.95 was queued as ``...__p0.95__...`` and its card
    said 95.0%: read as passing. Both are cut: ``p0.94`` and 94.9%."""
    probs = np.array([0.0, 0.0, 0.0, 0.05, 0.949573, 0.000427, 0, 0, 0, 0], np.float32)
    conf = float(probs[4])
    assert queued_name("a/b.png", 4, conf, "3f2a9c1b04de" * 5) == (
        "a~b.png__pred4__p0.94__3f2a9c1b04de.png"
    )
    item = ReviewItem("b.png", np.zeros((28, 28)), probs, 4, conf, "ok", unsure=True)
    html = render_review_sheet([item], model_ref="mnist:1", min_confidence=0.95)
    shown = re.findall(r"<span>([\d.]+)%</span></div>", html)
    assert shown == ["94.9", "5.0", "0.0"], shown  # 0.000427: 0.0%, never rounded up


def test_bad_item_is_refused() -> None:
    with pytest.raises(InvalidInputError, match=r"x\.png: image of shape"):
        render_review_sheet(
            [ReviewItem("x.png", np.zeros(784), np.full(10, 0.1), 0, 0.1, "ok", unsure=True)]
        )


def test_sheet_renders_offline(tmp_path: Path, mnist: Dataset, weak: Model) -> None:
    page = tmp_path / "index.html"
    page.write_text(render_review_sheet(_items(mnist, weak, 24), model_ref="mnist:1"))
    shot = np.asarray(Image.open(chromium.screenshot(page, tmp_path / "s.png")).convert("RGB"))
    assert np.any(shot < 235, axis=2).mean() > 0.05, "the screenshot is nearly blank"
    probe = re.search(r'id="image-probe"[^>]*>(\d+)/(\d+)<', chromium.loaded_dom(page))
    assert probe is not None and probe[1] == probe[2] == "24"
