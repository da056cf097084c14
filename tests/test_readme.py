"""The README's "From Python" blocks run as written, against a registry built here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from registry import Registry
from softmax_core.mnist import load_mnist
from softmax_core.modelfile import ModelFile
from softmax_core.train import train

ROOT = Path(__file__).resolve().parents[1]


def _blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## From Python", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_from_python_blocks_run(
    mnist_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from PIL import Image

    ds = load_mnist(str(mnist_dir), cache_dir=tmp_path / "cache")
    model: ModelFile = train(ds, limit=2000, epochs=1)
    model_path = model.save(tmp_path / "model.npz")
    uri = str(tmp_path / "registry")
    with Registry.open(uri, cache_dir=tmp_path / "cache") as reg:
        reg.publish(model_path, "mnist", alias="champion")
    png = tmp_path / "seven.png"
    Image.fromarray(np.asarray(ds.x_test[0])).save(png)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    blocks = _blocks()
    assert len(blocks) == 2
    scope = {"registry_uri": uri, "test_images": np.asarray(ds.x_test[:500]), "digit_png": png}
    for block in blocks:
        exec(compile(block, "README.md (From Python)", "exec"), scope)
    labels = scope["labels"]
    assert labels.shape == (500,)
    assert float(np.mean(labels == ds.y_test[:500])) > 0.8  # a real model, not noise
