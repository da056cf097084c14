"""The report as a person sees it: headless Chromium, network off, screenshot and DOM."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from softmax_core.mnist import Dataset
from softmax_core.model import Model
from softmax_core.report import render_report
from tests.report import chromium


@pytest.mark.slow
def test_report_renders_offline_with_every_image(
    tmp_path: Path, mnist: Dataset, strong: Model, weak: Model
) -> None:
    page = tmp_path / "report.html"
    page.write_text(
        render_report(
            strong, images=mnist.x_test, labels=mnist.y_test, champion=weak,
            champion_ref="mnist:1", manifest={"name": "mnist", "version": 2},
        ),
        encoding="utf-8",
    )  # fmt: skip

    shot = np.asarray(Image.open(chromium.screenshot(page, tmp_path / "shot.png")).convert("RGB"))
    assert shot.shape == (2000, 1280, 3)
    not_white = np.any(shot < 235, axis=2).mean()
    colours = len(np.unique(shot.reshape(-1, 3), axis=0))
    assert not_white > 0.05, f"the screenshot is nearly blank ({not_white:.1%} non-white)"
    assert colours > 200, f"the screenshot has only {colours} colours: no pictures drawn"

    dom = chromium.loaded_dom(page)
    probe = re.search(r'id="image-probe"[^>]*>(\d+)/(\d+)<', dom)
    assert probe is not None, "the load probe did not run"
    loaded, total = int(probe[1]), int(probe[2])
    assert total >= 30 and loaded == total, f"{loaded} of {total} images decoded"

    pred = strong.predict(mnist.x_test)
    text = re.sub(r"<[^>]+>", " ", dom)
    assert "Model report: mnist:2" in text
    assert f"{np.mean(pred == mnist.y_test):.4f}" in text
    assert "gate passed" in text
