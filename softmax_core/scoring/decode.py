"""Decoding in worker processes: image files -> MNIST digits -> probabilities, per batch.

Items are local files unless a :class:`Reader` is given: then the reader opens them (an
object store's, from ``registry.objects``: bytes fetched by a client of the worker's
own), and decoding is the same from there on.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from softmax_core import images, normalize, settings
from softmax_core.model import N_CLASSES, REJECT, Model, decide

STACK_MAX_PIXELS = 128 * 128  # images up to this size are normalised as a stack, per shape
DEFAULT_MAX_PIXELS = settings.MAX_PIXELS


class Reader(Protocol):
    """Opens the items of a batch that live elsewhere than in local files.

    It must pickle (it travels to worker processes and Dask workers with each batch) and
    carry no credentials: each process makes its own connection from its environment."""

    def open_all(self, paths: Sequence[str]) -> Iterator[IO[bytes] | images.ImageError]:
        """For each path, in order: a binary stream of the image, or why it cannot be read
        (an ImageError; e.g. over the size cap by its Content-Length, gone since listed)."""
        ...


def decode_items(
    items: Sequence[tuple[str, str | None]],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reader: Reader | None = None,
) -> tuple[NDArray[np.float32], list[str | None], list[int]]:
    """(path, problem) pairs -> (digits of the ok ones (k, 28, 28), a reason or None for
    each, the marks each holds: 1 for one digit, more where the page steps found a second
    digit or a word beside it (``normalize.PreparedStack``), 0 for a failure).

    A path is a local file, or what ``reader`` opens (an object key).

    Digits are MNIST-style (``softmax_core.images``), before the model's own steps.

    Small images of one shape (e.g. 28×28 scans) are normalised as a stack
    (``normalize.normalize_stack``, identical to one at a time, much faster); large ones one
    by one as they come, so a chunk of photos never holds more than one decoded photo.
    Plain 8-bit grayscale ones are kept as their raw bytes and become one uint8 stack with
    a single ``np.frombuffer`` (the same pixels as ``images.gray_pixels``, without an
    array per image). Any failure of one image becomes its reason; nothing here raises
    for one bad file.
    """
    n = len(items)
    errors: list[str | None] = [None] * n
    marks = [0] * n
    digits: NDArray[np.float32] | None = None  # made only when the batch is not one stack
    small: dict[tuple[int, int, str], list[tuple[int, Any]]] = {}
    opened = (
        reader.open_all([path for path, problem in items if problem is None])
        if reader is not None
        else None
    )
    for i, (path, problem) in enumerate(items):
        if problem is not None:
            errors[i] = problem
            continue
        # The reader's own failure (the store unreachable: no one image's fault) is raised.
        source: str | IO[bytes] | images.ImageError = next(opened) if opened is not None else path
        try:
            if isinstance(source, images.ImageError):
                raise source
            img = images.open_image(source, max_pixels=max_pixels)
            w, h = img.size
            if w * h <= STACK_MAX_PIXELS and images.is_plain_gray(img):
                small.setdefault((h, w, "raw"), []).append((i, img.tobytes()))
                continue
            gray = images.gray_pixels(img)
            if gray.size <= STACK_MAX_PIXELS:
                small.setdefault((*gray.shape, gray.dtype.char), []).append((i, gray))
            else:
                digits = _zeros(n) if digits is None else digits
                one, (errors[i],), (marks[i],) = decode_stack(gray[None])
                digits[i] = one[0]
        except images.ImageError as e:
            errors[i] = str(e)
        except Exception as e:  # one bad image never stops the batch
            errors[i] = f"corrupt: cannot convert: {e}"
    for (h, w, kind), members in small.items():
        index = [i for i, _ in members]
        out, errs, their_marks = decode_stack(_stack(members, h, w, raw=kind == "raw"))
        for i, err, m in zip(index, errs, their_marks, strict=True):
            marks[i] = m
            if err is not None:
                errors[i] = err
        if len(members) == n and all(e is None for e in errs):
            return out, errors, marks  # the common batch: one shape, all fine, in order
        digits = _zeros(n) if digits is None else digits
        digits[index] = out
    ok = np.fromiter((e is None for e in errors), dtype=bool, count=n)
    return (_zeros(n) if digits is None else digits)[ok], errors, marks


def decode_stack(
    stack: NDArray[Any],
) -> tuple[NDArray[np.float32], list[str | None], list[int]]:
    """Pixels of one shape (k, h, w) -> (their digits (k, 28, 28), zeros where one failed;
    a reason or None for each; the marks of each): ``normalize.prepare_stack`` with its
    errors as the reasons rows show."""
    done = normalize.prepare_stack(stack)
    reasons = [None if e is None else str(e) for e in done.errors]
    return done.digits, reasons, done.marks.tolist()


def predict_digits(model: Model, digits: NDArray[np.float32]) -> NDArray[np.float32]:
    """The model's probabilities (m, k) for m prepared digits (m, 28, 28); m may be 0."""
    if len(digits) == 0:
        return np.zeros((0, model.n_classes), dtype=np.float32)
    return model.predict_proba(digits)


def _zeros(n: int) -> NDArray[np.float32]:
    return np.zeros((n, normalize.SIDE, normalize.SIDE), dtype=np.float32)


def _stack(members: list[tuple[int, Any]], h: int, w: int, *, raw: bool) -> NDArray[Any]:
    """One (k, h, w) stack of a group's pixels: raw 8-bit bytes joined, or arrays stacked."""
    if raw:
        joined = b"".join(b for _, b in members)
        return np.frombuffer(joined, dtype=np.uint8).reshape(len(members), h, w)
    return np.stack([g for _, g in members])


# (probabilities of the ok items, reasons, marks: decode_items')
Prepared = tuple[NDArray[np.float32], list[str | None], list[int]]


def prepare_items(
    items: Sequence[tuple[str, str | None]],
    model: Model,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    reader: Reader | None = None,
) -> Prepared:
    """What a worker does for one batch: ``decode_items``, the model's recorded
    preprocessing, the prediction -> (probabilities (m, k) of the m ok items, reasons,
    marks).

    Predicting here rather than in the parent sends 10 floats per image back instead of
    784 features: the pipe and the pickling were a fifth of the per-image cost."""
    digits, errors, marks = decode_items(items, max_pixels, reader)
    return predict_digits(model, digits), errors, marks


BLANK = "blank"  # the ImageError kind of an image with no ink (softmax_core.normalize)
BLANK_PAGE = "blank page"  # a rejected row's reason for it
BY_MODEL = "not a digit (p="  # how a reason the model gave starts
NOT_ONE = "not one digit"  # ... and one for an image of several marks (with_rejects)


def not_one(marks: int) -> str:
    """The reason an image of several marks (``decode_items``' marks > 1) is not one
    digit: ``not one digit (2 separate marks)``, a rejected row's in scoring, a failure's
    in a labelled folder (``softmax_core.labelled.read_folder``)."""
    return f"{NOT_ONE} ({marks} separate marks)"


@dataclass
class ScoredBatch:
    """Rows for one batch. Row i is ``ok`` (``labels[i]`` its digit), ``error`` (image i
    failed: ``labels[i] == -1``, ``errors[i]`` the reason) or ``rejected`` (``labels[i]
    == -1``, ``rejects[i]`` the reason: ``not a digit (p=0.97)``, ``blank page``;
    :func:`with_rejects`).

    ``rels`` are the names rows show (escaped, ``discover.Item.rel``); ``paths`` the files
    themselves, to read again (the review queue), when the batch was made from them."""

    rels: list[str]
    labels: NDArray[np.int64]
    probs: NDArray[np.float32]  # (n, k), k the model's classes; zeros on error rows
    errors: list[str | None]
    paths: list[str] = field(default_factory=list)
    rejects: list[str | None] = field(default_factory=list)  # empty: none rejected
    marks: list[int] = field(default_factory=list)  # decode_items'; empty: not known

    def __len__(self) -> int:
        return len(self.rels)

    @property
    def rejected(self) -> NDArray[np.bool_]:
        """(n,) bool: the rejected rows."""
        n = len(self.rels)
        if not self.rejects:
            return np.zeros(n, dtype=bool)
        return np.fromiter((r is not None for r in self.rejects), dtype=bool, count=n)

    @property
    def confidence(self) -> NDArray[np.float32]:
        """(n,) what each row's ``confidence`` says: its digit's probability (ok rows),
        the "not a digit" probability (rejected by the model), NaN (errors, blank pages).
        For a 10-class model the row's largest probability, as always."""
        n = len(self.rels)
        out = np.full(n, np.nan, dtype=np.float32)
        ok = self.labels >= 0
        if ok.any():
            out[ok] = self.probs[ok, self.labels[ok]]
        if self.probs.shape[1] > N_CLASSES and self.rejects:
            by_model = np.fromiter(
                (r is not None and r.startswith(BY_MODEL) for r in self.rejects),
                dtype=bool,
                count=n,
            )
            out[by_model] = self.probs[by_model, REJECT]
        return out

    def unsure(self, min_confidence: float) -> NDArray[np.bool_]:
        """(n,) bool: the ok rows whose confidence is under ``min_confidence``: what the
        summary counts "below confidence", the review queue takes and its sheet marks."""
        return (self.labels >= 0) & (self.confidence < min_confidence)

    def statuses(self) -> list[str]:
        """Each row's ``status`` column: ``ok``, ``rejected`` or ``error``; what the run's
        profile counts rows by."""
        rejected = self.rejected.tolist()
        return [
            "error" if e is not None else "rejected" if r else "ok"
            for e, r in zip(self.errors, rejected, strict=True)
        ]


def score_prepared(rels: list[str], prepared: Prepared, paths: Sequence[str] = ()) -> ScoredBatch:
    """Rows for a prepared batch (``prepare_items``' result), in the items' order: each
    ok image labelled with its most likely digit (rejection is :func:`with_rejects`)."""
    p, errors, marks = prepared
    n = len(rels)
    labels = np.full(n, -1, dtype=np.int64)
    probs = np.zeros((n, p.shape[1]), dtype=np.float32)
    if len(p):
        ok = np.fromiter((e is None for e in errors), dtype=bool, count=n)
        probs[ok] = p
        labels[ok] = np.argmax(p[:, :N_CLASSES], axis=1)
    return ScoredBatch(
        rels=rels, labels=labels, probs=probs, errors=errors, paths=list(paths), marks=marks
    )


def with_rejects(batch: ScoredBatch, threshold: float) -> ScoredBatch:
    """The batch with the reject option applied: an image whose "not a digit" probability
    is its largest and at least ``threshold`` (:func:`softmax_core.model.decide`) is
    rejected with reason ``not a digit (p=0.97)``; an image of several marks (a second
    digit or a word beside the first: ``batch.marks``) with ``not one digit (3 separate
    marks)``, whatever the model said of the mark it read; a blank page (no ink: the
    preparation's ``blank`` error) with ``blank page`` instead of being an error. Only
    the model's rejects have a confidence (their p(not a digit)); the others have none."""
    n = len(batch)
    labels = batch.labels.copy()
    errors = list(batch.errors)
    rejects: list[str | None] = [None] * n
    ok = labels >= 0
    if batch.probs.shape[1] > N_CLASSES and ok.any():
        by_model = ok & (decide(batch.probs, threshold) == REJECT)
        for i in np.flatnonzero(by_model).tolist():
            rejects[i] = f"{BY_MODEL}{batch.probs[i, REJECT]:.2f})"
            labels[i] = -1
    for i, m in enumerate(batch.marks):  # 0 for failures: only images read are marked
        if m > 1:
            rejects[i], labels[i] = not_one(m), -1
    for i, err in enumerate(errors):
        if err is not None and err.split(":", 1)[0] == BLANK:
            rejects[i], errors[i] = BLANK_PAGE, None
    if all(r is None for r in rejects):
        return batch
    return ScoredBatch(
        rels=batch.rels,
        labels=labels,
        probs=batch.probs,
        errors=errors,
        paths=batch.paths,
        rejects=rejects,
        marks=batch.marks,
    )
