"""The review queue: the images a model was unsure of, copied for a person to label.

``softmax-pipe score DIR --review QUEUE`` hands every scored batch to a
:class:`ReviewQueue`. Each image scored below ``min_confidence``, and each image the model
rejected as not a digit (blank pages are not queued: there is nothing to label), is
copied into ``QUEUE/unlabelled/``, named so a person sees where it came from, what the
model said and how sure it was::

    QUEUE/unlabelled/scans~form-12.png__pred7__p0.41__3f2a9c1b04de.png
    QUEUE/unlabelled/scans~logo.png__rejected__p0.97__9b1c0e77a2f4.png

(the source path with ``/`` as ``~``, the predicted digit or ``rejected``, the confidence
cut to two decimals, never rounded up: 0.949573 is ``p0.94``, under a threshold of 0.95, the
first 12 hex digits of the file's sha256, the original extension). The person moves
each file into ``QUEUE/<digit>/``, or ``QUEUE/not-a-digit/``, with any file manager;
``dataset add QUEUE`` takes them from there. An image already anywhere in the queue (same bytes, whatever it is called now)
is never copied again.

:func:`write_review_sheet` then draws ``QUEUE/index.html``: the contact sheet of what is
still unlabelled (an image copied into a class folder rather than moved is labelled),
each image as the model saw it with its top-3 probabilities.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from softmax_core.atomicio import atomic_write, check_folder_path, make_folder
from softmax_core.errors import InvalidInputError, StorageError
from softmax_core.labelled import CLASSES, SHEET, UNLABELLED, images_under
from softmax_core.mnist.arrays import file_sha256
from softmax_core.model import Model
from softmax_core.scoring.decode import (
    ScoredBatch,
    decode_items,
    predict_digits,
    score_prepared,
    with_rejects,
)
from softmax_core.words import cut

# Kept in a queued file's name: letters and digits of any script (str.isalnum, as \w
# without "_"), "." "~" "-"; every other run (separators, controls, spaces, <>:"|?*\,
# underscores: "__" parts the name) becomes one "_".
_RUNS = re.compile(r"_+")
MAX_SUFFIX = 12  # characters of an extension kept (``ext_label``'s); a longer one is left off
MAX_STEM = 120  # UTF-8 bytes of the source path kept in a queued file's name (cap: 255)


def check_queue(folder: Path, root: Path) -> None:
    """InvalidInputError (exit 2) for a queue that is a file or under one, inside ``root`` (what is
    scored: its copies would be scored next time), or holding ``root`` (every image under
    the queue counts as queued: the images being scored would be "already queued")."""
    if folder.exists() and not folder.is_dir():
        raise InvalidInputError(f"--review {folder} is a file; expected a folder")
    check_folder_path(folder / UNLABELLED)  # a file on the way: afile/q, q/unlabelled
    queue, scored = folder.resolve(), root.resolve()
    if root.is_dir() and queue.is_relative_to(scored):
        raise InvalidInputError(
            f"--review {folder} is inside {root}, the folder being scored; "
            "choose a queue outside it"
        )
    if scored.is_relative_to(queue):
        raise InvalidInputError(
            f"--review {folder} holds {root}, what is being scored (its images would count "
            "as queued already); choose a queue beside it"
        )


def _kept(c: str) -> bool:
    """A character a queued file's name keeps: a letter or digit of any script, a mark
    that belongs to one (a vowel sign, a virama, a tone mark: category M), ``.``, ``~``,
    ``-``."""
    return c.isalnum() or c in ".~-" or unicodedata.category(c).startswith("M")


def queued_name(rel: str, label: int, confidence: float, digest: str) -> str:
    """The file name of a queued image: source, prediction (``pred7``, or ``rejected`` for
    label -1: not a digit), confidence (cut to two decimals: never rounded up to a
    threshold it is under), hash, extension. The source keeps its letters and
    digits in any script with their marks, NFC-normalised (``Фото~снимок_1.jpg``,
    ``हिन्दी.png``); every other run of characters (separators, spaces, controls,
    underscores: ``__`` parts the name) is one ``_``; at most :data:`MAX_STEM` bytes of
    UTF-8, cut between characters, and an extension of at most :data:`MAX_SUFFIX`
    characters: the name stays under 255 bytes."""
    text = unicodedata.normalize("NFC", rel)
    suffix = "".join(c if _kept(c) else "_" for c in Path(text).suffix.lower())
    suffix = suffix if len(suffix) <= MAX_SUFFIX else ""
    text = text.replace("/", "~")
    stem = _RUNS.sub("_", "".join(c if _kept(c) else "_" for c in text)).lstrip(".~-")
    stem = stem.encode()[:MAX_STEM].decode("utf-8", "ignore") or "image"
    said = f"pred{label}" if label >= 0 else "rejected"
    return f"{stem}__{said}__p{cut(confidence, 2)}__{digest[:12]}{suffix}"


@dataclass
class ReviewQueue:
    """Copies the unsure images of each scored batch into ``folder/unlabelled/``.

    ``root`` is what was scored (the rows' paths are relative to it; a file is its own
    root). Counts: ``queued`` (copied this run), ``already`` (unsure, but in the queue
    from an earlier run, under any name or label folder).
    """

    folder: Path
    root: Path
    min_confidence: float
    queued: list[Path] = field(default_factory=list)
    already: int = 0
    _known: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        self.root = Path(self.root)
        check_queue(self.folder, self.root)
        make_folder(self.folder / UNLABELLED)  # "cannot create the folder …", as every output
        try:
            self._known = {file_sha256(p) for p in images_under(self.folder)}
        except OSError as e:
            raise StorageError(
                f"cannot read the review queue {self.folder}: {e.strerror or e}"
            ) from e

    def _source(self, rel: str) -> Path:
        return self.root / rel if self.root.is_dir() else self.root

    def _real(self, source: Path, rel: str) -> str:
        """The source's path under ``root`` as its file system names it (``rel`` is the
        row's, escaped for display: a control character reads ``\\u200f``)."""
        if not self.root.is_dir():
            return source.name
        real = os.path.relpath(source, self.root)
        return rel if real.startswith("..") else real

    def add(self, batch: ScoredBatch) -> None:
        """Queue the batch's images scored below ``min_confidence`` and the ones the model
        rejected as not digits (errors and blank pages never are)."""
        conf = batch.confidence
        unsure = batch.unsure(self.min_confidence)
        by_model = batch.rejected & ~np.isnan(conf)
        for i in np.flatnonzero(unsure | by_model).tolist():
            rel = batch.rels[i]
            try:
                source = Path(batch.paths[i]) if batch.paths else self._source(rel)
                data = source.read_bytes()
            except OSError as e:
                raise StorageError(f"cannot read {rel} to queue it for review: {e}") from e
            digest = hashlib.sha256(data).hexdigest()
            if digest in self._known:
                self.already += 1
                continue
            real, label = self._real(source, rel), int(batch.labels[i])
            name = queued_name(real, label, float(conf[i]), digest)
            dest = self.folder / UNLABELLED / name
            try:
                atomic_write(dest, data)
            except OSError as e:
                raise StorageError(f"cannot write {dest} into the review queue: {e}") from e
            self._known.add(digest)
            self.queued.append(dest)


def _still_unlabelled(folder: Path) -> list[Path]:
    """The images of ``folder/unlabelled/`` but those whose bytes a class folder of the
    queue holds: copied there rather than moved, they are labelled."""
    try:
        labelled = {file_sha256(p) for c in CLASSES for p in images_under(folder / c)}
        waiting = list(images_under(folder / UNLABELLED))
        return [p for p in waiting if not labelled or file_sha256(p) not in labelled]
    except OSError as e:
        raise StorageError(f"cannot read the review queue {folder}: {e}") from e


def write_review_sheet(
    folder: Path, model: Model, *, min_confidence: float, reject_threshold: float | None
) -> Path:
    """``folder/index.html``: the contact sheet of ``folder/unlabelled/``, scored by ``model``
    as a run scores (``decode_items``, ``score_prepared``, ``with_rejects`` at
    ``reject_threshold``, None: off): each card says what the image's row says, and is
    counted below ``min_confidence`` as the summary counts (``ScoredBatch.unsure``). An
    image a class folder of the queue holds too is labelled, and left off."""
    from softmax_core.report import ReviewItem, render_review_sheet

    paths = _still_unlabelled(Path(folder))
    digits, errors, marks = decode_items([(str(p), None) for p in paths])
    prepared = (predict_digits(model, digits), errors, marks)
    batch = score_prepared([p.name for p in paths], prepared)
    if reject_threshold is not None:
        batch = with_rejects(batch, reject_threshold)
    conf, unsure = batch.confidence.tolist(), batch.unsure(min_confidence).tolist()
    statuses, rejects = batch.statuses(), batch.rejects or [None] * len(batch)
    shown = [i for i, e in enumerate(errors) if e is None]  # a broken file or a blank
    items = [  # page a person dropped in has no image to show
        ReviewItem(
            name=batch.rels[i],
            image=digit,
            probs=batch.probs[i],
            label=int(batch.labels[i]),
            confidence=conf[i],
            status=statuses[i],
            unsure=unsure[i],
            reason=rejects[i] or "",
        )
        for i, digit in zip(shown, digits, strict=True)
    ]
    html = render_review_sheet(
        items,
        title=f"Review queue: {Path(folder).name}",
        model_ref=model.ref,
        min_confidence=min_confidence,
    )
    out = Path(folder) / SHEET
    try:
        atomic_write(out, html)
    except OSError as e:
        raise StorageError(f"cannot write the review sheet {out}: {e}") from e
    return out
