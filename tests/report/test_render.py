"""``render_report`` on real MNIST: one self-contained page with every section."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from softmax_core import preprocess
from softmax_core.mnist import Dataset
from softmax_core.modelfile import ModelFile
from softmax_core.preprocess import HOG
from softmax_core.report import render_report
from softmax_core.report.model_report import _learned

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]


def test_self_contained_page_with_every_section(
    mnist: Dataset, strong: ModelFile, weak: ModelFile
) -> None:
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
    pred = np.argmax(preprocess.features(mnist.x_test, strong.steps) @ strong.W + strong.b, axis=1)
    assert f"{np.mean(pred == mnist.y_test):.4f}" in html
    assert "mnist:7" in html and "mnist:6" in html and "gate passed" in html
    assert "McNemar" in html and "r-1" in html and mnist.digest in html


def test_floor_refusal_without_champion(mnist: Dataset, weak: ModelFile) -> None:
    html = render_report(
        weak, images=mnist.x_test[:2000], labels=mnist.y_test[:2000], title="weak.npz"
    )
    assert "refused (floor)" in html and "below the floor" in html
    assert "No champion to compare against" in html
    assert "Model report: weak.npz" in html


def test_domains_table(mnist: Dataset, strong: ModelFile, weak: ModelFile) -> None:
    n = 1000
    domains = np.where(np.arange(n) % 2 == 0, "scanner", "phone")
    html = render_report(
        strong, images=mnist.x_test[:n], labels=mnist.y_test[:n],
        champion=weak, champion_ref="mnist:1", domains=domains,
    )  # fmt: skip
    assert "Per domain" in html and "scanner" in html and "phone" in html


def test_html_in_metadata_is_escaped(mnist: Dataset, weak: ModelFile) -> None:
    html = render_report(
        weak, images=mnist.x_test[:500], labels=mnist.y_test[:500],
        title="<b>x</b>", manifest={"lineage": {"note": "<script>alert(1)</script>"}},
    )  # fmt: skip
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>x</b>" not in html


def test_gradient_features_drawn_as_glyphs() -> None:
    rng = np.random.default_rng(0)
    steps = ["scale", "deskew", dict(HOG)]
    model = ModelFile(
        W=rng.normal(size=(392, 10)).astype(np.float32),
        b=np.zeros(10, np.float32),
        meta={"preprocessing": {"steps": steps}},
    )
    section = _learned(model)
    assert "7×7 cells of 4×4 pixels" in section and "8 orientation bins" in section
    (png,) = _images(section)
    assert png.startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("d", "steps"),
    [(392, ["scale", {**HOG, "cell": 7}]), (100, ["scale", {**HOG, "cell": 14, "bins": 9}])],
)
def test_unknown_layout_falls_back_to_the_weight_matrix(d: int, steps: list[object]) -> None:
    """Weights that do not fit the recorded layout (a file would be refused on load; an
    in-memory model can still be drawn): the plain weight matrix."""
    model = ModelFile(
        W=np.ones((d, 10), np.float32),
        b=np.zeros(10, np.float32),
        meta={"preprocessing": {"steps": steps}},
    )
    section = _learned(model)
    assert "layout this report does not know" in section and f"({d} features)" in section
    assert len(_images(section)) == 1
