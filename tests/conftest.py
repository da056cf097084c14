"""Shared fixtures: a scrubbed environment, real MNIST, temporary cache and registry.

Real MNIST comes from ``$SOFTMAX_PIPE_MNIST`` (set by .ci/run) or ``../shared/data/mnist``.
When it is missing the tests that need it fail, never skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MNIST = REPO.parent / "shared" / "data" / "mnist"
_MNIST_FROM_ENV = os.environ.get("SOFTMAX_PIPE_MNIST")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No AWS_* or SOFTMAX_PIPE_* leaks in from the developer's shell; caches go to temp."""
    for key in list(os.environ):
        if key.startswith(("AWS_", "SOFTMAX_PIPE_")):
            monkeypatch.delenv(key, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    # boto3 must never find the developer's credentials or config.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST IDX folder. Missing data is a failure, not a skip."""
    path = Path(_MNIST_FROM_ENV) if _MNIST_FROM_ENV else DEFAULT_MNIST
    names = [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ]
    missing = [n for n in names if not (path / n).is_file()]
    if missing:
        pytest.fail(f"real MNIST missing at {path}: {missing} (set SOFTMAX_PIPE_MNIST)")
    return path


@pytest.fixture(scope="session")
def session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dataset cache for the whole session, so real MNIST is parsed once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    d = tmp_path / "cache"
    d.mkdir()
    yield d
