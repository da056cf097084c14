"""Training requests and flow runs for the tests: one request built the way the CLI builds
it, from the request's own parts (``softmax_core.requests``), pointed at real MNIST, a
dataset cache and a registry.

Used by the flow tests, the runner tests and the shared champion fixtures
(``tests/conftest.py``), so every test trains through the same object a user's run does.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from softmax_core.requests import (
    Data,
    Gate,
    Hyper,
    Location,
    Retries,
    Target,
    TrainingRequest,
    parts,
)

#: no waiting between retries in tests (the number of retries stays the default)
NO_DELAY = Retries(io_retry_delay=0.0)


def training_request(
    mnist_dir: Path | str,
    cache: Path | str,
    registry: Path | str,
    *,
    endpoint_url: str | None = None,
    data: Data | None = None,
    hyper: Hyper | None = None,
    gate: Gate | None = None,
    target: Target | None = None,
    retries: Retries = NO_DELAY,
) -> TrainingRequest:
    """A training request on ``mnist_dir`` with its cache in ``cache``, publishing to
    ``registry``; the other parts as given (defaults: the request's own)."""
    where = Location(registry=str(registry), endpoint_url=endpoint_url, cache_dir=str(cache))
    return TrainingRequest(
        data=dataclasses.replace(data or Data(), source=str(mnist_dir)),
        hyper=hyper or Hyper(),
        gate=gate or Gate(),
        target=dataclasses.replace(target or Target(), location=where),
        retries=retries,
    )


def run_training_flow(request: TrainingRequest) -> Any:
    """Run the training flow on ``request``; its final state (never raises on a failed run)."""
    from flows.training import training_pipeline

    return training_pipeline(**parts(request), return_state=True)
