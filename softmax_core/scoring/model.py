"""The model a scoring run uses: a :class:`~softmax_core.predictor.Classifier` with a name."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.errors import InvalidInputError
from softmax_core.modelfile import ModelFile
from softmax_core.predictor import Classifier

N_CLASSES = 10


@dataclass(frozen=True)
class ScoringModel:
    """Weights plus the preprocessing they were trained with; picklable (flows ship it).

    ``name`` is what the summary calls it: ``mnist:3`` or the model file's path.
    """

    classifier: Classifier
    name: str

    @property
    def steps(self) -> tuple[Any, ...]:
        return tuple(self.classifier.steps)

    @property
    def W(self) -> NDArray[np.float32]:
        return self.classifier.model_file.W

    @property
    def b(self) -> NDArray[np.float32]:
        return self.classifier.model_file.b

    @classmethod
    def from_model_file(cls, model: ModelFile, name: str) -> ScoringModel:
        if model.W.ndim != 2 or model.W.shape[1] != N_CLASSES or model.b.shape != (N_CLASSES,):
            raise InvalidInputError(
                f"model {name} has W{model.W.shape}, b{model.b.shape}; scoring needs "
                f"W(d, {N_CLASSES}) and b({N_CLASSES},)"
            )
        return cls(classifier=Classifier(model, ref=name), name=name)

    def predict_proba(self, digits: NDArray[np.floating]) -> NDArray[np.float32]:
        """(n, 28, 28) digits in [0, 1] -> (n, 10) class probabilities."""
        return self.classifier.predict_proba(digits)


def is_model_file(ref: str) -> bool:
    """``--model`` names a file when it exists as one or ends in ``.npz``."""
    return ref.lower().endswith(".npz") or os.path.isfile(ref)


def load_model_file(path: str) -> ScoringModel:
    """A model file (``.npz``, verified, no pickles) as a ScoringModel."""
    return ScoringModel.from_model_file(ModelFile.load(path), path)
