"""A trained model ready to predict: its weights plus the preprocessing recorded with them.

The Python API's last step (see the README's "From Python")::

    clf = Classifier.from_file("model.npz")         # or Registry.classifier("mnist@champion")
    clf.predict(images)                              # images: (n, 28, 28) uint8 or float in [0, 1]
    clf.predict_files(["a.png", "b.jpg"])            # any image files, prepared as `score` does

Shapes: ``images: (n, 28, 28)`` (or ``(n, 784)``), probabilities ``(n, 10) float32``,
labels ``(n,) int64``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import preprocess, settings
from softmax_core.model import SoftmaxRegression
from softmax_core.modelfile import ModelFile


class Classifier:
    """Predicts digits with one model file's weights and its own recorded preprocessing.

    Attributes:
        model_file: the :class:`ModelFile` (weights ``W (d, 10)``, ``b (10,)``, ``meta``).
        steps: the preprocessing steps replayed on every input.
        ref: where it came from (``mnist:3``, a path), for messages and lineage.
    """

    def __init__(self, model_file: ModelFile, *, ref: str = "<model>") -> None:
        self.model_file = model_file
        self.steps = model_file.steps
        self.ref = ref
        self._regression = SoftmaxRegression.from_weights(model_file.W, model_file.b)

    @classmethod
    def from_file(cls, path: str | Path) -> Classifier:
        """Load a model file (``.npz``, verified, no pickles)."""
        return cls(ModelFile.load(path), ref=str(path))

    def features(self, images: Any) -> NDArray[np.float32]:
        """(n, 28, 28) images -> (n, d) float32 features, with the model's own steps."""
        return preprocess.features(np.asarray(images), self.steps)

    def predict_proba(self, images: Any) -> NDArray[np.float32]:
        """Class probabilities of (n, 28, 28) images: (n, 10) float32, rows sum to 1."""
        return self._regression.predict_proba(self.features(images))

    def predict(self, images: Any) -> NDArray[np.int64]:
        """Most likely digit of each of (n, 28, 28) images: (n,) int64."""
        return self._regression.predict(self.features(images))

    def predict_files(
        self, paths: Iterable[str | Path], *, max_pixels: int = settings.MAX_PIXELS
    ) -> NDArray[np.int64]:
        """Digits in image files, each prepared as ``softmax-pipe score`` prepares it.

        Raises :class:`softmax_core.errors.ImageError` naming the first file that is not a
        readable image with ink (``score`` reports such files as rows and goes on).
        """
        from softmax_core.images import read_digit

        digits = [read_digit(p, max_pixels=max_pixels) for p in paths]
        if not digits:
            return np.empty(0, dtype=np.int64)
        return self.predict(np.stack(digits))
