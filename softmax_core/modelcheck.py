"""Reading a model file that may be hostile: caps first, then parsing, then validation.

Everything is checked before anything large is allocated: the archive's declared member
sizes and each ``.npy`` header's shape and dtype are read (``numpy.lib.format``) before an
array is; object arrays (pickles) are refused; meta JSON is capped in size and depth;
weights must be finite float32 ``W (d, 10)`` (``d`` from the steps) and ``b (10,)``, with
``|w| <= MAX_WEIGHT`` (so that probabilities stay finite); the recorded steps must be known. A problem is one
:class:`DataFormatError` saying what the file is.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import npzread
from softmax_core.errors import DataFormatError, DataNotFoundError, InvalidInputError
from softmax_core.preprocess import Steps
from softmax_core.quadratic import Quadratic

MAX_MODEL_BYTES = 64 * 1024 * 1024  # a 784x10 float32 model is 33 KiB
MAX_META_BYTES = 1024 * 1024
MAX_META_DEPTH = 32
MAX_WEIGHT = 1e4  # trained weights are below 10; 3e38 makes every probability NaN
N_CLASSES = 10
CLASS_COUNTS = (10, 11)  # the digits; the digits and "not a digit" (softmax_core.model)
MEMBERS = ("W", "b", "meta")
TERMS = ("Q_mean", "Q_basis", "Q_w")  # second-order terms (optional; softmax_core.model)


def read_model_bytes(path: Path) -> bytes:
    """The bytes of a model file; only a regular file of at most MAX_MODEL_BYTES is read
    (a FIFO would hang, ``/dev/zero`` would never end)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataNotFoundError(f"model file {path} does not exist") from None
    except OSError as e:
        raise DataFormatError(f"model file {path} cannot be read: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataFormatError(f"{path} is a folder, not a model file (.npz)")
    if not stat.S_ISREG(st.st_mode):
        raise DataFormatError(f"model file {path} is not a regular file (a device or a FIFO?)")
    if st.st_size > MAX_MODEL_BYTES:
        raise DataFormatError(
            f"model file {path} is {st.st_size:,} bytes, over the cap of {MAX_MODEL_BYTES:,}"
        )
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataFormatError(f"model file {path} cannot be read: {e.strerror or e}") from None


def read_arrays(data: bytes, origin: str) -> dict[str, NDArray[Any]]:
    """W, b and meta from .npz bytes (and the terms' arrays, :data:`TERMS`, when there),
    each header checked before its data is read (:func:`softmax_core.npzread.read_arrays`,
    capped at :data:`MAX_MODEL_BYTES`)."""
    return npzread.read_arrays(
        data,
        MEMBERS,
        origin=origin,
        what="a softmax-pipe model file",
        max_bytes=MAX_MODEL_BYTES,
        optional=TERMS,
    )


def _depth(value: Any) -> int:
    depth, level = 0, [value]
    while level:
        depth += 1
        if depth > MAX_META_DEPTH:
            return depth
        level = [
            v
            for x in level
            if isinstance(x, dict | list)
            for v in (x.values() if isinstance(x, dict) else x)
        ]
    return depth


def parse_meta(array: NDArray[Any], origin: str) -> dict[str, Any]:
    """The meta JSON object, capped in size and nesting; its steps checked."""
    if array.shape != () or array.dtype.kind != "U":
        raise DataFormatError(
            f"{origin}: meta must be one JSON string, got {array.dtype}{array.shape}"
        )
    text = str(array[()])
    if len(text) > MAX_META_BYTES:
        raise DataFormatError(f"{origin}: meta is {len(text):,} characters, over the cap")
    try:
        meta = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise DataFormatError(f"{origin}: model metadata is not valid JSON ({e})") from None
    if not isinstance(meta, dict):
        raise DataFormatError(f"{origin}: model metadata is not a JSON object")
    if _depth(meta) > MAX_META_DEPTH:
        raise DataFormatError(f"{origin}: model metadata nests deeper than {MAX_META_DEPTH}")
    return meta


def parse_steps(meta: dict[str, Any], origin: str) -> Steps:
    """The recorded feature steps (``meta["preprocessing"]["steps"]``; files without them
    predate the steps and are pixels: ``["scale"]``), parsed once; unknown steps or
    parameters are a DataFormatError, never skipped."""
    pre = meta.get("preprocessing", {"steps": ["scale"]})
    steps = pre.get("steps") if isinstance(pre, dict) else None
    try:
        return Steps.parse(steps)
    except InvalidInputError as e:
        raise DataFormatError(f"{origin}: {e}") from None


def check_weights(W: NDArray[Any], b: NDArray[Any], d: int, origin: str) -> None:
    """Finite float32 W (d, k) and b (k,), ``k`` 10 or 11 (``CLASS_COUNTS``), ``d`` the
    width of the recorded steps' features, bounded so probabilities stay finite."""
    k = W.shape[1] if W.ndim == 2 else -1
    if (
        W.dtype != np.float32
        or b.dtype != np.float32
        or W.shape != (d, k)
        or k not in CLASS_COUNTS
        or b.shape != (k,)
    ):
        raise DataFormatError(
            f"{origin}: weights have W{W.shape} {W.dtype}, b{b.shape} {b.dtype}; "
            f"expected float32 W ({d}, k) and b (k,), k 10 or 11, for its features"
        )
    if not (np.isfinite(W).all() and np.isfinite(b).all()):
        raise DataFormatError(f"{origin}: weights contain non-finite values")
    if oversized(W, b) is not None:
        raise DataFormatError(
            f"{origin}: weights exceed {MAX_WEIGHT:g} in magnitude; probabilities would overflow"
        )


def oversized(*arrays: NDArray[Any]) -> float | None:
    """The largest magnitude in ``arrays`` when it is over :data:`MAX_WEIGHT` (a model
    file with it is refused: probabilities would overflow), else None. Training refuses
    to return such weights by this same rule (``softmax_core.sgd``)."""
    largest = max(float(np.abs(a).max(initial=0)) for a in arrays)
    return largest if largest > MAX_WEIGHT else None


def parse_terms(
    key: str, spec: Any, arrays: dict[str, NDArray[Any]], d: int, k: int, origin: str
) -> Quadratic:
    """The second-order terms meta's ``key`` announces (``{"method": "quadratic",
    "directions": q}``), from the arrays :data:`TERMS`: finite float32, shaped for ``d``
    features, ``q`` directions and ``k`` classes, bounded like the weights. ``key``
    "terms" (format ``model@2``): ``Q_w (e, k)``; "reject_terms" (``model@1``, an
    11-class model's "not a digit" alone): ``Q_w (e,)``, returned as ``(e, k)`` with the
    digits' columns zero."""
    q = spec.get("directions") if isinstance(spec, dict) else None
    if (
        not isinstance(spec, dict)
        or spec.get("method") != "quadratic"
        or not isinstance(q, int)
        or isinstance(q, bool)
        or not 1 <= q <= d
    ):
        raise DataFormatError(
            f"{origin}: {key} {spec!r} is invalid; expected "
            f'{{"method": "quadratic", "directions": 1..{d}}}'
        )
    legacy = key == "reject_terms"
    if legacy and k != N_CLASSES + 1:
        raise DataFormatError(f"{origin}: second-order terms in a 10-class model")
    missing = [m for m in TERMS if m not in arrays]
    if missing:
        raise DataFormatError(f"{origin}: {key} without the arrays {missing}")
    mean, basis, w = (arrays[m] for m in TERMS)
    if any(
        a.dtype != np.float32 or not np.isfinite(a).all() or oversized(a) is not None
        for a in (mean, basis, w)
    ):
        raise DataFormatError(f"{origin}: {key} hold non-float32, non-finite or huge values")
    e = q * (q + 1) // 2
    shape = (e,) if legacy else (e, k)
    if mean.shape != (d,) or basis.shape != (d, q) or w.shape != shape:
        raise DataFormatError(
            f"{origin}: {key} have Q_mean{mean.shape}, Q_basis{basis.shape}, "
            f"Q_w{w.shape}; expected ({d},), ({d}, {q}), {shape}"
        )
    if legacy:
        column, w = w, np.zeros((e, k), np.float32)
        w[:, N_CLASSES] = column  # "not a digit", the class after the digits
    return Quadratic(mean, basis, w)
