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
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core.atomicio import atomic_write
from softmax_core.errors import DataFormatError, DataNotFoundError
from softmax_core.preprocess import validate_steps

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
    def steps(self) -> tuple[str, ...]:
        """The preprocessing steps recorded with the weights."""
        return tuple(self.meta.get("preprocessing", {}).get("steps", ("scale",)))

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
        """Parse .npz bytes with ``allow_pickle=False``; a bad file is a DataFormatError."""
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                missing = {"W", "b", "meta"} - set(z.files)
                if missing:
                    raise DataFormatError(
                        f"{origin}: not a softmax-pipe model file (missing arrays {sorted(missing)})"
                    )
                W, b, meta_text = z["W"], z["b"], str(z["meta"][()])
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise DataFormatError(f"{origin}: not a readable model file ({e})") from e
        try:
            meta = json.loads(meta_text)
        except json.JSONDecodeError as e:
            raise DataFormatError(f"{origin}: model metadata is not valid JSON ({e})") from e
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise DataFormatError(
                f"{origin}: unsupported model format {meta.get('format') if isinstance(meta, dict) else meta!r}; "
                f"expected {FORMAT!r}"
            )
        if (
            W.dtype != np.float32
            or b.dtype != np.float32
            or W.ndim != 2
            or b.shape != (W.shape[1],)
        ):
            raise DataFormatError(
                f"{origin}: weights have W{W.shape} {W.dtype}, b{b.shape} {b.dtype}; "
                "expected float32 W (784, 10) and b (10,)"
            )
        if not (np.isfinite(W).all() and np.isfinite(b).all()):
            raise DataFormatError(f"{origin}: weights contain non-finite values")
        model = cls(W=W, b=b, meta=meta)
        validate_steps(model.steps)
        return model

    @classmethod
    def load(cls, path: str | Path) -> ModelFile:
        path = Path(path)
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise DataNotFoundError(f"model file {path} does not exist") from e
        except IsADirectoryError as e:
            raise DataFormatError(f"model file {path} is a directory, expected an .npz file") from e
        return cls.from_bytes(data, origin=str(path))
