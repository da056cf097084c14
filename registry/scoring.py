"""The model a scoring run uses, from ``--model``: a model file, or a registry reference."""

from __future__ import annotations

from pathlib import Path

from registry.core import Registry
from softmax_core.scoring import ScoringModel, is_model_file, load_model_file


def load_scoring_model(
    ref: str, *, registry: str, endpoint_url: str | None = None, cache_dir: Path
) -> ScoringModel:
    """A model file path, or a registry reference pulled (verified, cached) from ``registry``.

    Raises ModelNotFoundError / DataNotFoundError (exit 3) when it does not exist.
    """
    if is_model_file(ref):
        return load_model_file(ref)
    with Registry.open(registry, endpoint_url=endpoint_url, cache_dir=cache_dir) as reg:
        manifest, model = reg.load(ref)
    return ScoringModel.from_model_file(model, manifest.ref)
