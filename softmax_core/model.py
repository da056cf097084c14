"""The one model type: softmax-regression weights with the feature steps they were trained on.

::

    model = Model.load("model.npz")              # or Registry.model("mnist@champion")
    model.predict_proba(images)                  # images: (n, 28, 28) uint8 or float in [0, 1]
    model.predict(images)                        # (n,) int64: digits, 10 = not a digit
    model.predict_files(["a.png", "b.jpg"])      # any image files, prepared as `score` does
    model.predict_proba_files(["a.png"])         # their probabilities, (n, k)

Shapes: ``W (d, k) float32``, ``b (k,) float32`` with ``d = steps.n_features`` and ``k``
the number of classes, 10 or 11: classes 0..9 are the digits and, in an 11-class model,
class :data:`REJECT` (10) is "not a digit" (learned from ``softmax_core.negatives`` and the
users' ``not-a-digit/`` folders). A 10-class model (every file written before the reject
option) loads and predicts exactly as before and never rejects. ``images (n, 28, 28)`` (or
``(n, 784)``), features ``X (n, d)``, probabilities ``(n, k) float32``, classes ``(n,)
int64``. Prediction is written once, here: every caller (evaluation, the gate, scoring
workers, reports) goes through :meth:`Model.logits`, which divides ``X W + b`` by the
model's temperature (:mod:`softmax_core.calibration`, fitted on a held-out slice of the
training data), so every probability a caller sees is calibrated. The temperature never
changes which digit a 10-class model predicts: its :meth:`Model.predict` takes the argmax
of the undivided logits; an 11-class model rejects by its calibrated "not a digit"
probability (:func:`decide`).

A model file is an ``.npz`` of three arrays, loaded with ``allow_pickle=False`` after the
checks of :mod:`softmax_core.modelcheck`::

    W      (d, k) float32    weights, k = 10 (digits) or 11 (digits, then "not a digit")
    b      (k,) float32      biases
    meta   0-d unicode array JSON text: {"format": "softmax-pipe/model@2", "preprocessing":
                             {"steps": [...]}, "input_schema": {..., "classes": k},
                             "calibration": {...} (optional), "terms": {...}, and
                             ModelInfo's fields}

and, announced by ``"terms": {"method": "quadratic", "directions": q}``, three more: the
second-order terms every class weighs beside the features (:mod:`softmax_core.quadratic`)::

    Q_mean  (d,) float32     the digits' mean features
    Q_basis (d, q) float32   their leading directions, scaled
    Q_w     (q(q+1)/2, k)    each class's logit per pairwise product

A file without terms (``Data(terms=0)``) is written as format ``model@1``, which has none
of these, or only "not a digit"'s: the format before the digits weighed the terms, read
as it always was. An 11-class ``model@1`` file may announce ``"reject_terms"`` with the
same three arrays, ``Q_w (q(q+1)/2,)`` being the logit of "not a digit" alone (read as
terms whose digits' weights are zero: the digits' logits bit for bit, that of "not a
digit" to float32 rounding, since its terms are now one column of a matrix product; on
MNIST test the largest change in that logit was 2e-5). A reader
that knows only ``model@1`` refuses a ``model@2`` file (it would score it without its
terms).

``calibration`` (:class:`~softmax_core.calibration.Calibration`): ``{"method":
"temperature", "temperature": T, "images": n, "nll_before": ..., "nll_after": ...}``.
Optional within format ``@1``: a file without it (every file written before it existed,
and a model trained with ``calibration_images=0``) has ``T = 1`` and scores exactly as it
always did, bit for bit; a reader that predates it keeps it as an unknown key and scores
with ``T = 1`` (the same labels; uncalibrated probabilities).

The number of classes is W's width; ``input_schema.classes`` says it too. ``meta`` holds,
besides the format and the steps, what :class:`ModelInfo` types: when it
was trained, the hyperparameters, the data it learned from (digest, source, size), the
warm start's origin, the per-epoch history, metrics, training time and code version.
Keys this version does not know are kept as they are (``ModelInfo.extra``).
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import modelcheck, settings
from softmax_core.atomicio import atomic_write
from softmax_core.blas import one_thread
from softmax_core.calibration import Calibration
from softmax_core.errors import DataFormatError, ImageError, InvalidInputError
from softmax_core.preprocess import Steps
from softmax_core.quadratic import Quadratic
from softmax_core.sgd import EpochStats
from softmax_core.softmax import softmax

FORMAT = "softmax-pipe/model@2"  # a model with terms (every trained model by default)
FORMAT_LINEAR = "softmax-pipe/model@1"  # without terms, or with "not a digit"'s alone
N_CLASSES = 10  # the digits
REJECT = 10  # the class "not a digit" of an 11-class model
CLASS_COUNTS = (N_CLASSES, N_CLASSES + 1)  # modelcheck.CLASS_COUNTS, sgd.CLASS_COUNTS (tested)
INPUT_SCHEMA = {
    "shape": [28, 28],
    "dtype": "uint8 in 0..255 or float in [0, 1]",
    "features": 784,
    "classes": N_CLASSES,
    "ink": "bright on dark",
}
_HISTORY_FIELDS = tuple(f.name for f in dataclasses.fields(EpochStats))
TERMS_KEYS = ("terms", "reject_terms")  # what announces the terms in model@2, in model@1


def decide(probs: NDArray[np.floating], reject_threshold: float | None) -> NDArray[np.int64]:
    """The class each row of ``probs (n, k)`` is given: the most likely digit, or
    :data:`REJECT` where the row has a "not a digit" column (k = 11), ``reject_threshold``
    is not None, and that column is the row's largest and at least ``reject_threshold``.
    A 10-class row, or None (rejection off), always gets a digit. Pure: probabilities in,
    classes out (scoring's rows, benchmarks)."""
    p = np.asarray(probs)
    digits: NDArray[np.int64] = np.argmax(p[:, :N_CLASSES], axis=1).astype(np.int64)
    if p.shape[1] <= N_CLASSES or reject_threshold is None or len(p) == 0:
        return digits
    reject = p[:, REJECT]
    rejected = (reject >= p[:, :N_CLASSES].max(axis=1)) & (reject >= reject_threshold)
    return np.where(rejected, REJECT, digits).astype(np.int64)


def now() -> str:
    """The time a model is made or written, as its file records it (UTC, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelInfo:
    """What a model file records about the model, beside its weights and steps.

    ``params`` are the hyperparameters (``Hyper.sgd_params()`` plus ``features``,
    ``limit`` and, with users' data, ``data_weight``, ``data_share`` and ``weighting``); ``metrics`` what
    was measured (test accuracy, ...). ``warm_start``: the reference (or the creation
    time) of the model training started from. ``extra``: keys of newer writers.
    """

    created: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    n_train: int | None = None
    data_digest: str | None = None
    data_source: str | None = None
    warm_start: str | None = None
    history: tuple[EpochStats, ...] = ()
    train_accuracy: float | None = None
    train_seconds: float | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    code_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON object a model file's ``meta`` holds (without format and steps)."""
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc.pop("extra")
        doc["history"] = [dataclasses.asdict(h) for h in self.history]
        return {**self.extra, **doc}

    @classmethod
    def from_json(cls, meta: dict[str, Any], origin: str) -> ModelInfo:
        """The info in a parsed ``meta`` object; a field of the wrong type is a
        DataFormatError naming it (a model file may be hostile)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        reserved = {"format", "preprocessing", "input_schema", "calibration", *TERMS_KEYS}

        def typed(key: str, kinds: type | tuple[type, ...]) -> Any:
            value = meta.get(key)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise DataFormatError(f"{origin}: meta {key} must be {_names(kinds)}")
            return value

        for key in ("params", "metrics"):
            typed(key, dict)
        history = typed("history", list) or []
        return cls(
            created=typed("created", str),
            params=dict(meta.get("params") or {}),
            n_train=typed("n_train", int),
            data_digest=typed("data_digest", str),
            data_source=typed("data_source", str),
            warm_start=typed("warm_start", str),
            history=tuple(_epoch(h) for h in history if _is_epoch(h)),
            train_accuracy=typed("train_accuracy", (int, float)),
            train_seconds=typed("train_seconds", (int, float)),
            metrics=dict(meta.get("metrics") or {}),
            code_version=typed("code_version", str),
            extra={k: v for k, v in meta.items() if k not in known | reserved},
        )


def _names(kinds: type | tuple[type, ...]) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(
        {"dict": "an object", "list": "a list"}.get(k.__name__, k.__name__) for k in kinds
    )


def _is_epoch(h: Any) -> bool:
    """A history entry this version can read (others, from a damaged file, are left out)."""
    return isinstance(h, dict) and all(
        isinstance(h.get(k), int | float) and not isinstance(h.get(k), bool)
        for k in _HISTORY_FIELDS
    )


def _epoch(h: dict[str, Any]) -> EpochStats:
    return EpochStats(
        epoch=int(h["epoch"]),
        epochs=int(h["epochs"]),
        loss=float(h["loss"]),
        accuracy=float(h["accuracy"]),
        learning_rate=float(h["learning_rate"]),
    )


@dataclass(frozen=True, eq=False)
class Model:
    """A softmax regression over the features ``steps`` makes: ``p(y | x) = softmax((x W + b) / T)``.

    Attributes:
        W: (d, k) float32 weights, ``d = steps.n_features``, ``k`` 10 or 11 (class 10:
            not a digit).
        b: (k,) float32 biases.
        steps: the feature steps replayed on every input (``softmax_core.preprocess``).
        info: what it was trained on and how (:class:`ModelInfo`).
        ref: where it came from (``mnist:3``, a file path), for messages and score rows.
        calibration: the temperature ``T`` and how it was fitted; None: ``T = 1``.
        quadratic: second-order terms of the features and each class's weights over
            them (:mod:`softmax_core.quadratic`), added to the logits; None: none.
    """

    W: NDArray[np.float32]
    b: NDArray[np.float32]
    steps: Steps
    info: ModelInfo = field(default_factory=ModelInfo)
    ref: str = "<model>"
    calibration: Calibration | None = None
    quadratic: Quadratic | None = None

    def __post_init__(self) -> None:
        d = self.steps.n_features
        k = self.W.shape[1] if self.W.ndim == 2 else -1
        if (
            self.W.dtype != np.float32
            or self.b.dtype != np.float32
            or self.W.shape != (d, k)
            or k not in CLASS_COUNTS
            or self.b.shape != (k,)
        ):
            raise InvalidInputError(
                f"model {self.ref} has W{self.W.shape} {self.W.dtype}, b{self.b.shape} "
                f"{self.b.dtype}; expected float32 W ({d}, k) and b (k,) with k 10 or 11 "
                f"for its features ({self.steps.describe()})"
            )
        terms = self.quadratic
        if terms is not None and (terms.d != d or terms.k != k):
            raise InvalidInputError(
                f"model {self.ref} has second-order terms over {terms.d} features for "
                f"{terms.k} classes; expected its {d} features and {k} classes"
            )

    @property
    def n_classes(self) -> int:
        """``k``: 10 (the digits), or 11 (the digits, then :data:`REJECT`, not a digit)."""
        return int(self.W.shape[1])

    @property
    def can_reject(self) -> bool:
        """Whether the model has the class "not a digit" (an 11-class model)."""
        return self.n_classes > N_CLASSES

    def with_classes(self, k: int) -> Model:
        """This model with ``k`` classes, as a warm start: a 10-class model given "not a
        digit" (the digits' columns copied, the new column and its bias zero, over the
        features and the terms), an 11-class one without it (the digits' columns); itself
        when it has ``k`` already."""
        if k not in CLASS_COUNTS:
            raise InvalidInputError(f"a model has 10 or 11 classes, not {k}")
        if k == self.n_classes:
            return self

        def columns(a: NDArray[np.float32]) -> NDArray[np.float32]:
            if k < a.shape[-1]:
                return np.ascontiguousarray(a[..., :k])
            return np.concatenate([a, np.zeros((*a.shape[:-1], 1), np.float32)], axis=-1)

        terms = self.quadratic
        return self.evolve(
            W=columns(self.W),
            b=columns(self.b),
            quadratic=None if terms is None else terms.with_weights(columns(terms.w)),
        )

    def evolve(self, **changes: Any) -> Model:
        """A copy with some attributes changed (``info=...``, ``ref=...``)."""
        return dataclasses.replace(self, **changes)

    @property
    def temperature(self) -> float:
        """``T``, the number the logits are divided by (1 when not calibrated)."""
        return 1.0 if self.calibration is None else self.calibration.temperature

    # --- prediction ---------------------------------------------------------------------
    def features(self, images: Any) -> NDArray[np.float32]:
        """(n, 28, 28) images -> (n, d) float32 features, with the model's own steps."""
        return self.steps.features(np.asarray(images))

    @one_thread()
    def logits(self, X: NDArray[np.float32], *, calibrated: bool = True) -> NDArray[np.float32]:
        """Features (n, d) -> logits ``(X W + b + terms(X) Q_w) / T`` (n, k) float32
        (without terms: ``(X W + b) / T``); ``calibrated=False``: undivided.
        Every prediction goes through here. Without a calibration (``T = 1``) nothing is
        divided: the same bits as before temperatures existed."""
        if X.ndim != 2 or X.shape[1] != self.W.shape[0]:
            raise InvalidInputError(
                f"model {self.ref} expects {self.W.shape[0]} features, got shape {X.shape}"
            )
        result: NDArray[np.float32] = X @ self.W + self.b
        if self.quadratic is not None:
            result += self.quadratic.logit(X)
        if calibrated and self.calibration is not None:
            result /= np.float32(self.calibration.temperature)
        return result

    def predict_proba(self, images: Any) -> NDArray[np.float32]:
        """Calibrated class probabilities of (n, 28, 28) images: (n, k) float32, rows sum
        to 1."""
        return softmax(self.logits(self.features(images)))

    def predict(self, images: Any) -> NDArray[np.int64]:
        """The class of each of (n, 28, 28) images: (n,) int64, the most likely digit or,
        for an 11-class model, :data:`REJECT` where ``score`` rejects by default
        (:func:`decide` at ``settings.REJECT_THRESHOLD``)."""
        return self.predict_features(self.features(images))

    def predict_features(self, X: NDArray[np.float32]) -> NDArray[np.int64]:
        """:meth:`predict` from features already made (a cached split): (n,) int64. A
        10-class model: the argmax of the undivided logits (the temperature cannot move it:
        dividing two neighbouring float32 values could round them equal). An 11-class
        model: :func:`decide` on the calibrated probabilities (10 where it rejects)."""
        if self.can_reject:
            return decide(softmax(self.logits(X)), settings.REJECT_THRESHOLD)
        result: NDArray[np.int64] = np.argmax(self.logits(X, calibrated=False), axis=1).astype(
            np.int64
        )
        return result

    def predict_files(
        self, paths: Iterable[str | Path], *, max_pixels: int = settings.MAX_PIXELS
    ) -> NDArray[np.int64]:
        """Digits in image files, each prepared as ``softmax-pipe score`` prepares it:
        (n,) int64, the most likely class of each (see :meth:`predict_proba_files`)."""
        digits = self._read_files(paths, max_pixels)
        if digits is None:
            return np.empty(0, dtype=np.int64)
        return self.predict(digits)

    def predict_proba_files(
        self, paths: Iterable[str | Path], *, max_pixels: int = settings.MAX_PIXELS
    ) -> NDArray[np.float32]:
        """Class probabilities of image files, each prepared as ``softmax-pipe score``
        prepares it: (n, k) float32, rows sum to 1 (``score --probs``' p0 ... p9, and
        p_reject for an 11-class model).

        Raises :class:`softmax_core.errors.ImageError` naming the first file that is not a
        readable image with ink (``score`` reports such files as rows and goes on).
        """
        digits = self._read_files(paths, max_pixels)
        if digits is None:
            return np.empty((0, self.n_classes), dtype=np.float32)
        return self.predict_proba(digits)

    @staticmethod
    def _read_files(paths: Iterable[str | Path], max_pixels: int) -> NDArray[np.float32] | None:
        """The files as (n, 28, 28) prepared digits in [0, 1], or None when there are none."""
        from softmax_core.images import read_digit

        digits = []
        for p in paths:
            try:
                digits.append(read_digit(p, max_pixels=max_pixels))
            except ImageError as e:  # read_digit's message does not say which file
                raise ImageError(e.kind, f"{p}: {e.detail}") from None
        return np.stack(digits) if digits else None

    # --- the file -----------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """The model file's bytes: an .npz of W, b and meta (no pickles)."""
        meta = {
            "format": FORMAT_LINEAR if self.quadratic is None else FORMAT,
            "preprocessing": {"steps": self.steps.to_json()},
            "input_schema": {**INPUT_SCHEMA, "classes": self.n_classes},
            **self.info.to_json(),
        }
        if self.calibration is not None:
            meta["calibration"] = self.calibration.to_json()
        meta["created"] = meta["created"] or now()
        arrays: dict[str, Any] = {  # Any: savez's keywords are typed as its own options
            "W": np.ascontiguousarray(self.W, dtype=np.float32),
            "b": np.ascontiguousarray(self.b, dtype=np.float32),
            "meta": None,  # below, once meta is whole
        }
        if self.quadratic is not None:
            meta["terms"] = {"method": "quadratic", "directions": self.quadratic.q}
            arrays["Q_mean"] = self.quadratic.mean
            arrays["Q_basis"] = self.quadratic.basis
            arrays["Q_w"] = self.quadratic.w
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write atomically: a temporary file in the same folder, then rename (missing
        folders are made)."""
        return atomic_write(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, *, origin: str = "<bytes>", ref: str | None = None) -> Model:
        """Parse .npz bytes with ``allow_pickle=False``, capped and validated before use
        (:mod:`softmax_core.modelcheck`); a bad file is one DataFormatError naming
        ``origin``. ``ref``: what the model is called (default: ``origin``)."""
        arrays = modelcheck.read_arrays(data, origin)
        meta = modelcheck.parse_meta(arrays["meta"], origin)
        fmt = meta.get("format")
        if fmt not in (FORMAT, FORMAT_LINEAR):
            raise DataFormatError(
                f"{origin}: unsupported model format {fmt!r}; expected {FORMAT!r} or "
                f"{FORMAT_LINEAR!r}"
            )
        steps = modelcheck.parse_steps(meta, origin)
        modelcheck.check_weights(arrays["W"], arrays["b"], steps.n_features, origin)
        info = ModelInfo.from_json(meta, origin)
        calibration = (
            Calibration.from_json(meta["calibration"], origin) if "calibration" in meta else None
        )
        key, wrong = ("terms", "reject_terms") if fmt == FORMAT else ("reject_terms", "terms")
        if wrong in meta:
            raise DataFormatError(f"{origin}: {wrong!r} in a model of format {fmt!r}")
        quad = None
        if key in meta:
            k = int(arrays["W"].shape[1])
            quad = modelcheck.parse_terms(key, meta[key], arrays, steps.n_features, k, origin)
        return cls(
            W=arrays["W"],
            b=arrays["b"],
            steps=steps,
            info=info,
            ref=ref or origin,
            calibration=calibration,
            quadratic=quad,
        )

    @classmethod
    def load(cls, path: str | Path) -> Model:
        """Read a model file: a regular file only, capped in size, then :meth:`from_bytes`."""
        return cls.from_bytes(modelcheck.read_model_bytes(Path(path)), origin=str(path))
