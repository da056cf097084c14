"""Model files: an ``.npz`` of arrays plus JSON metadata, loaded with ``allow_pickle=False``.

Arrays:
    W      (784, 10) float32   weights
    b      (10,) float32       biases
    meta   0-d unicode array   JSON text (below)

Metadata (``meta``), a JSON object:
    format          "softmax-pipe/model@1"
    created         ISO 8601 UTC time the file was written
    preprocessing   {"steps": ["scale", "deskew"]}: replayed exactly at scoring
    input_schema    {"shape": [28, 28], "dtype": "uint8 or float in [0, 1]",
                     "features": 784, "classes": 10, "ink": "bright on dark"}
    params          the trainer's hyperparameters
    data_digest     sha256 of the training data (lineage)
    data_source     where the data came from
    metrics         test metrics (accuracy, ...), when evaluated
    code_version    git SHA when available, else the package version
    history         per-epoch training loss and accuracy
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import modelcheck, preprocess
from softmax_core.atomicio import atomic_write
from softmax_core.errors import DataFormatError

FORMAT = "softmax-pipe/model@1"
INPUT_SCHEMA = {
    "shape": [28, 28],
    "dtype": "uint8 in 0..255 or float in [0, 1]",
    "features": 784,
    "classes": 10,
    "ink": "bright on dark",
}


@dataclass
class ModelFile:
    """Weights and metadata of one trained model."""

    W: NDArray[np.float32]
    b: NDArray[np.float32]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> preprocess.Steps:
        """The preprocessing steps recorded with the weights (checked, canonical)."""
        return preprocess.validate_steps(
            self.meta.get("preprocessing", {}).get("steps", ("scale",))
        )

    def to_bytes(self) -> bytes:
        """Serialise to .npz bytes (no pickles)."""
        meta = {"format": FORMAT, **self.meta}
        meta.setdefault("created", datetime.now(UTC).isoformat(timespec="seconds"))
        meta.setdefault("input_schema", INPUT_SCHEMA)
        buf = io.BytesIO()
        np.savez(
            buf,
            W=np.ascontiguousarray(self.W, dtype=np.float32),
            b=np.ascontiguousarray(self.b, dtype=np.float32),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temporary file in the same folder, then rename."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "<bytes>") -> ModelFile:
        """Parse .npz bytes with ``allow_pickle=False``, capped and validated before use
        (:mod:`softmax_core.modelcheck`); a bad file is one DataFormatError."""
        arrays = modelcheck.read_arrays(data, origin)
        meta = modelcheck.parse_meta(arrays["meta"], origin)
        if meta.get("format") != FORMAT:
            raise DataFormatError(
                f"{origin}: unsupported model format {meta.get('format')!r}; expected {FORMAT!r}"
            )
        modelcheck.check_weights(arrays["W"], arrays["b"], meta, origin)
        return cls(W=arrays["W"], b=arrays["b"], meta=meta)

    @classmethod
    def load(cls, path: str | Path) -> ModelFile:
        """Read a model file: a regular file only, capped in size, then :meth:`from_bytes`."""
        path = Path(path)
        return cls.from_bytes(modelcheck.read_model_bytes(path), origin=str(path))
