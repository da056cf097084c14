"""Fixtures of the CLI tests: a registry on each store, and small model files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.registry.helpers import make_model


@pytest.fixture(params=["local", "s3"])
def registry_uri(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "local":
        return str(tmp_path / "registry")
    return f"s3://{request.getfixturevalue('s3_bucket')}/cli"


@pytest.fixture
def model_files(tmp_path: Path) -> list[Path]:
    """Three model files, seeds 1-3, with accuracy 0.91, 0.92, 0.93 in their metadata."""
    return [
        make_model(seed, accuracy=0.9 + seed / 100).save(tmp_path / f"m{seed}.npz")
        for seed in (1, 2, 3)
    ]
