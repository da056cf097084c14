"""A run's profile, counted batch by batch as the rows are made, and a model's reference
profile (the same counts on MNIST test); the records and the drift check are
:mod:`softmax_core.monitoring`'s.

Rows are counted by their ``status`` (:meth:`ScoredBatch.statuses`): ``ok`` rows give the
label histogram, the confidence histogram and the accuracy estimate; ``rejected`` rows
the rejected share; ``error`` rows (files that could not be read) are only counted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from softmax_core import settings
from softmax_core.atomicio import writes_in_place
from softmax_core.model import N_CLASSES, Model, now
from softmax_core.monitoring import Profile
from softmax_core.scoring.decode import (
    ScoredBatch,
    decode_stack,
    predict_digits,
    score_prepared,
    with_rejects,
)

REFERENCE_BATCH = 2048  # MNIST test images predicted at a time for a reference profile


def profile_path(output: str | None) -> Path | None:
    """Where a run's profile goes beside its ``output`` (as typed): ``FILE.profile.json``;
    None for stdout, an object store's key, or a device, FIFO or pipe (``/dev/null``,
    ``/dev/stdout``: no file can go beside it)."""
    if output is None or "://" in output or writes_in_place(output):
        return None
    return Path(output + settings.PROFILE_SUFFIX)


def drop_old_profile(output: str | None) -> str | None:
    """Remove the profile an earlier run left beside ``output`` (:func:`profile_path`),
    once this run's rows have replaced that run's: it describes rows no longer there (a run
    that writes a profile writes its own after). Returns why it could not be removed, or
    None (removed, or there was none)."""
    path = profile_path(output)
    if path is None:
        return None
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as e:
        return f"cannot remove {path}, an earlier run's profile of other rows: {e.strerror or e}"
    return None


@dataclass
class ProfileCounts:
    """The counts of a profile so far; :meth:`profile` freezes them."""

    edges: tuple[float, ...] = settings.PROFILE_CONFIDENCE_EDGES
    total: int = 0
    ok: int = 0
    rejected: int = 0
    failed: int = 0
    labels: NDArray[np.int64] = field(default_factory=lambda: np.zeros(N_CLASSES, np.int64))
    confidence: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    confidence_sum: float = 0.0

    def __post_init__(self) -> None:
        self.confidence = np.zeros(len(self.edges) - 1, dtype=np.int64)

    def add(self, batch: ScoredBatch) -> None:
        status = np.asarray(batch.statuses(), dtype=object)
        ok = status == "ok"
        self.total += len(batch)
        self.ok += int(ok.sum())
        self.rejected += int((status == "rejected").sum())
        self.failed += int((status == "error").sum())
        if ok.any():
            self.labels += np.bincount(batch.labels[ok], minlength=N_CLASSES)[:N_CLASSES]
            top = batch.confidence[ok].astype(np.float64)  # the digit's probability
            self.confidence_sum += float(top.sum())
            # bins [e0, e1), ..., [e_{k-1}, e_k]: the top edge (1.0) falls in the last bin
            inner = np.asarray(self.edges[1:-1], dtype=np.float64)
            self.confidence += np.bincount(
                np.searchsorted(inner, top, side="right"), minlength=len(self.confidence)
            )

    def profile(self, *, model: str, input: str, created: str | None = None) -> Profile:
        return Profile(
            model=model,
            created=created or now(),
            input=input,
            total=self.total,
            ok=self.ok,
            rejected=self.rejected,
            failed=self.failed,
            labels=tuple(int(c) for c in self.labels),
            confidence_edges=tuple(float(e) for e in self.edges),
            confidence=tuple(int(c) for c in self.confidence),
            confidence_sum=self.confidence_sum,
        )


def reference_profile(
    model: Model, images: NDArray[np.uint8], *, input: str = "MNIST test"
) -> Profile:
    """The model's profile on ``images`` (MNIST test): the rows ``score`` would make for
    them as 28×28 gray files (the MNIST procedure again, then the model, rejecting at the
    default threshold), counted as a run's are. (n, 28, 28) uint8 in, a :class:`Profile` out."""
    counts = ProfileCounts()
    for start in range(0, len(images), REFERENCE_BATCH):
        chunk: NDArray[Any] = np.asarray(images[start : start + REFERENCE_BATCH])
        digits, errors, marks = decode_stack(chunk)
        ok = np.fromiter((e is None for e in errors), dtype=bool, count=len(errors))
        probs = predict_digits(model, digits[ok])
        batch = score_prepared([""] * len(chunk), (probs, errors, marks))
        counts.add(with_rejects(batch, settings.REJECT_THRESHOLD))
    return counts.profile(model=model.ref, input=input)
