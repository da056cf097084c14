"""``render_report`` on real MNIST: one self-contained page with every section."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from softmax_core.errors import InvalidInputError
from softmax_core.mnist import Dataset
from softmax_core.model import Model
from softmax_core.preprocess import Hog, Scale, Steps
from softmax_core.report import render_report
from softmax_core.report.model_report import _learned

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_self_contained_page_with_every_section(mnist: Dataset, strong: Model, weak: Model) -> None:
    manifest = {
        "name": "mnist",
        "version": 7,
        "digest": "ab" * 32,
        "lineage": {"flow_run_id": "r-1"},
    }
    html = render_report(
        strong, images=mnist.x_test, labels=mnist.y_test, manifest=manifest,
        champion=weak, champion_ref="mnist:6", test_digest=mnist.digest,
    )  # fmt: skip
    assert html.startswith("<!doctype html>")
    for anchor in ("learned", "errors", "calibration", "training", "champion", "lineage"):
        assert f'id="{anchor}"' in html
    # Self-contained: no script, no stylesheet or font link, every src inline.
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert "http://" not in html and "https://" not in html
    srcs = re.findall(r'src="([^"]*)"', html)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    images = _images(html)
    assert all(i.startswith(PNG_MAGIC) for i in images)
    assert len(images) >= 10 + 3 * 6 + 4  # templates, misclassified strips, 4 plots
    pred = strong.predict(mnist.x_test)
    assert f"{np.mean(pred == mnist.y_test):.4f}" in html
    assert "mnist:7" in html and "mnist:6" in html and "gate passed" in html
    assert "McNemar" in html and "r-1" in html and mnist.digest in html


def test_floor_refusal_without_champion(mnist: Dataset, weak: Model) -> None:
    html = render_report(
        weak, images=mnist.x_test[:2000], labels=mnist.y_test[:2000], title="weak.npz"
    )
    assert "refused (floor)" in html and "below the floor" in html
    assert "No champion to compare against" in html
    assert "Model report: weak.npz" in html


def test_domains_table(mnist: Dataset, strong: Model, weak: Model) -> None:
    n = 1000
    domains = np.where(np.arange(n) % 2 == 0, "scanner", "phone")
    html = render_report(
        strong, images=mnist.x_test[:n], labels=mnist.y_test[:n],
        champion=weak, champion_ref="mnist:1", domains=domains,
    )  # fmt: skip
    assert "Per domain" in html and "scanner" in html and "phone" in html


def test_a_holdout_names_not_a_digit_as_its_folder(mnist: Dataset, weak: Model) -> None:
    """The holdout images read wrong are captioned ``true → predicted`` with the class
    "not a digit" named as users write it (``not-a-digit``), never as its index 10."""
    images = mnist.x_test[:40]
    labels = np.where(np.arange(40) < 10, 10, mnist.y_test[:40]).astype(np.uint8)
    html = render_report(
        weak, images=mnist.x_test[:500], labels=mnist.y_test[:500],
        holdouts=[("mine", images, labels)],
    )  # fmt: skip
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert any(c.startswith("not-a-digit → ") for c in captions), captions
    assert not any("10" in c.split(" → ") for c in captions), captions


def test_a_ten_class_models_holdout_strip_shows_digits_only(mnist: Dataset, strong: Model) -> None:
    """A 10-class model is gated on a holdout's digits: its page does not show the
    not-a-digit images, which it cannot say, as images it read wrong."""
    images = mnist.x_test[:40]
    labels = np.where(np.arange(40) < 10, 10, mnist.y_test[:40]).astype(np.uint8)
    html = render_report(
        strong, images=mnist.x_test[:500], labels=mnist.y_test[:500],
        holdouts=[("mine", images, labels)],
    )  # fmt: skip
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", html)
    assert not any(c.startswith("not-a-digit → ") for c in captions), captions


def test_html_in_metadata_is_escaped(mnist: Dataset, weak: Model) -> None:
    html = render_report(
        weak, images=mnist.x_test[:500], labels=mnist.y_test[:500],
        title="<b>x</b>", manifest={"lineage": {"note": "<script>alert(1)</script>"}},
    )  # fmt: skip
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>x</b>" not in html


def test_gradient_features_drawn_as_glyphs() -> None:
    rng = np.random.default_rng(0)
    model = Model(
        W=rng.normal(size=(392, 10)).astype(np.float32),
        b=np.zeros(10, np.float32),
        steps=Steps.named("hog"),
    )
    section = _learned(model)
    assert "7×7 cells of 4×4 pixels" in section and "8 orientation bins" in section
    (png,) = _images(section)
    assert png.startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("hog", "text"),
    [
        (Hog(cell=7), "4×4 cells of 7×7 pixels, each with 8 orientation bins"),
        (Hog(cell=14, bins=9), "2×2 cells of 14×14 pixels, each with 9 orientation bins"),
    ],
)
def test_other_hog_layouts_are_drawn_as_their_own_glyphs(hog: Hog, text: str) -> None:
    """Any recorded HOG layout is known: its weights are drawn cell by cell. Weights that
    do not fit the recorded layout (once drawn as a plain weight matrix) cannot make a
    Model any more."""
    steps = Steps((Scale(), hog))
    model = Model(
        W=np.ones((steps.n_features, 10), np.float32), b=np.zeros(10, np.float32), steps=steps
    )
    section = _learned(model)
    assert text in section and "layout this report does not know" not in section
    assert len(_images(section)) == 1
    with pytest.raises(InvalidInputError, match="expected float32 W"):
        Model(W=np.ones((392, 10), np.float32), b=np.zeros(10, np.float32), steps=steps)


def _calibration_section(html: str) -> str:
    found = re.search(r'<section id="calibration">.*?</section>', html, re.S)
    assert found is not None
    return found[0]


def test_the_reliability_diagram_before_and_after_calibration(
    mnist: Dataset, strong: Model
) -> None:
    from softmax_core.metrics import expected_calibration_error
    from softmax_core.softmax import softmax

    x, y = mnist.x_test[:3000], mnist.y_test[:3000]
    section = _calibration_section(render_report(strong, images=x, labels=y))
    assert strong.calibration is not None
    X = strong.features(x)
    after = expected_calibration_error(softmax(strong.logits(X)), y)
    before = expected_calibration_error(softmax(strong.logits(X, calibrated=False)), y)
    assert after != before
    assert f"<b>{after:.4f}</b>" in section and f"<b>{before:.4f}</b>" in section
    assert f"T = {strong.temperature:.4f}" in section and "15 equal-width bins" in section
    assert "before calibration (T = 1)" in section and "after (T = " in section
    diagrams = _images(section)
    assert len(diagrams) == 2 and diagrams[0] != diagrams[1]
    assert all(d.startswith(PNG_MAGIC) for d in diagrams)
    assert section.count("<table>") == 2

    plain = _calibration_section(render_report(strong.evolve(calibration=None), images=x, labels=y))
    assert len(_images(plain)) == 1 and "has no temperature" in plain
    assert f"<b>{before:.4f}</b>" in plain
