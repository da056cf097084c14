"""The README's "From Python" blocks run as written, against a registry built here."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from registry import Registry

ROOT = Path(__file__).resolve().parents[1]


def _blocks(heading: str) -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_from_python_block_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The block is whole: it names its own data and registry (from the checkout, where
    ``../shared/data/mnist`` is), trains, publishes, pulls and predicts."""
    import tempfile

    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    (block,) = _blocks("From Python")
    scope: dict[str, object] = {}
    exec(compile(block, "README.md (From Python)", "exec"), scope)
    labels = scope["labels"]
    assert isinstance(labels, np.ndarray) and labels.shape == (500,)


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
