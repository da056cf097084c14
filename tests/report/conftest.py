"""Fixtures of the report tests: real MNIST, two quickly trained models, a local registry."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from registry import Registry
from softmax_core.mnist import Dataset, load_mnist
from softmax_core.model import Model
from softmax_core.requests import Data, Hyper
from softmax_core.train import train

LINEAGE = {
    "flow": "training pipeline",
    "flow_run_id": "0f1e2d3c-run",
    "flow_run_name": "brave-otter",
    "dataset": "mnist-train:3",
}


@pytest.fixture(scope="session")
def mnist(mnist_dir: Path, session_cache: Path) -> Dataset:
    return load_mnist(str(mnist_dir), cache_dir=session_cache)


@pytest.fixture(scope="session")
def weak(mnist: Dataset) -> Model:
    """A pixel model trained on 2,000 images: clearly worse than ``strong``."""
    return train(mnist, Hyper(features="pixels", epochs=1, limit=2000))


@pytest.fixture(scope="session")
def strong(mnist: Dataset) -> Model:
    """A deskewed pixel model on 20,000 images (above the 0.95 gate floor), of 10 classes
    (``weak`` has the class "not a digit": the report draws both kinds)."""
    model = train(mnist, Hyper(features="deskew", epochs=2, limit=20000), data=Data(reject=False))
    return model.evolve(info=dataclasses.replace(model.info, code_version="c0ffee1"))


@pytest.fixture(scope="session")
def registry_dir(tmp_path_factory: pytest.TempPathFactory, weak: Model, strong: Model) -> Path:
    """A local registry: mnist:1 (weak, @champion) and mnist:2 (strong, no alias)."""
    root = tmp_path_factory.mktemp("registry")
    with Registry.open(str(root), cache_dir=tmp_path_factory.mktemp("pulled")) as reg:
        reg.publish(weak, "mnist", alias="champion", lineage=LINEAGE)
        reg.publish(strong, "mnist", lineage=LINEAGE)
    return root
