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


def test_the_recovery_commands_work_as_written(tmp_path: Path) -> None:
    """Each `softmax-pipe registry ...` of "When a run is cut short" runs, in order, on a
    registry left as a run killed between publish and promote leaves it."""
    from typer.testing import CliRunner

    from registry import layout
    from softmax_pipe.cli import app
    from tests.registry.helpers import make_model

    text = (ROOT / "README.md").read_text()
    para = text.split("**When a run is cut short", 1)[1].split("\n\n**", 1)[0]
    commands = re.findall(r"`softmax-pipe (registry [^`]+)`", " ".join(para.split()))
    assert [c.split()[1] for c in commands] == [
        "versions",
        "promote",
        "rollback",
        "history",
        "promote",
    ]
    uri = str(tmp_path / "registry")
    with Registry.open(uri, cache_dir=tmp_path / "cache") as reg:
        reg.publish(make_model(1), "mnist", alias="champion")
        reg.publish(make_model(2), "mnist")  # the run was killed before its promote
        damage = lambda: reg.store.put(layout.alias_key("mnist", "champion"), b"{")  # noqa: E731
    runner = CliRunner()
    for i, command in enumerate(commands):
        if i == len(commands) - 1:
            damage()
        args = [*command.replace("mnist:N", "mnist:2").split(), "--registry", uri]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.stderr)
    with Registry.open(uri, cache_dir=tmp_path / "cache") as reg:
        assert reg.resolve("mnist@champion").version == 2
