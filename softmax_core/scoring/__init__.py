"""Batch scoring of image folders: discover, decode in parallel, score in batches, stream rows.

The pieces, each usable alone (the ``score`` command and the ``batch scoring`` flow are
both built from them)::

    ScoringModel             a model file's Classifier with a name (the registry pull of a
                             reference happens at the edge: registry.load_scoring_model)
    Discovery(path)          the images under PATH, walked recursively in a deterministic
                             order (sorted by name, folders and files interleaved);
                             symlinked folders are followed once (no loops); other files
                             are counted as skipped
    decode_items(items)      image files -> MNIST-style 28×28 digits (softmax_core.images),
                             an error reason for each file that failed
    prepare_items(items, m)  decode_items + the model's recorded preprocessing + the
                             prediction: what a worker process does with one batch
    score_batches(...)       Item stream -> ScoredBatch stream, in order, with at most a
                             few batches in flight: memory stays flat whatever the size
    RowWriter / open_output  CSV or JSON Lines rows to stdout, or to a temporary file that
                             is renamed over FILE only once everything is written
    ScoreSummary             counts per class, failures with reasons, skipped files, low
                             confidence, for stderr
    score_path(...)          all of the above, for one PATH
    ReviewQueue              the unsure images of each batch, copied for a person to label
                             (``review.write_review_sheet`` draws the queue's index.html)

Output columns: ``path`` (relative to PATH, ``/``-separated; the file name when PATH
is a file), ``label``, ``confidence``, ``status`` (``ok``/``error``), ``error`` (the
reason), ``model`` (the version that scored it), then ``p0``..``p9`` with ``probs``. Failed images are rows with
``status=error``; the run goes on.

The parent process keeps its BLAS to one thread while the workers decode (through
threadpoolctl, a core dependency); worker processes
limit theirs the same way and set ``OMP_NUM_THREADS=1`` & co. for anything they load.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

from softmax_core import settings
from softmax_core.scoring.decode import (
    STACK_MAX_PIXELS,
    Prepared,
    ScoredBatch,
    decode_items,
    prepare_items,
    score_prepared,
)
from softmax_core.scoring.discover import (
    Discovery,
    EntryKind,
    Item,
    count_images,
    no_images_error,
)
from softmax_core.scoring.model import N_CLASSES, ScoringModel, is_model_file, load_model_file
from softmax_core.scoring.options import FORMATS, default_workers, validate_options
from softmax_core.scoring.pool import (
    chunked,
    quiet_bomb_warnings,
    score_batches,
)
from softmax_core.scoring.review import ReviewQueue, write_review_sheet
from softmax_core.scoring.summary import MAX_LISTED_FAILURES, ScoreSummary
from softmax_core.scoring.writers import (
    COLUMNS,
    PROB_COLUMNS,
    RowWriter,
    check_output_path,
    neutralise,
    open_output,
)

DEFAULT_MODEL = settings.MODEL_REF
DEFAULT_BATCH_SIZE = settings.SCORE_BATCH_SIZE
DEFAULT_MIN_CONFIDENCE = settings.MIN_CONFIDENCE
DEFAULT_MAX_PIXELS = settings.MAX_PIXELS

__all__ = [
    "COLUMNS",
    "FORMATS",
    "MAX_LISTED_FAILURES",
    "N_CLASSES",
    "PROB_COLUMNS",
    "STACK_MAX_PIXELS",
    "Discovery",
    "EntryKind",
    "Item",
    "Prepared",
    "ReviewQueue",
    "RowWriter",
    "ScoreSummary",
    "ScoredBatch",
    "ScoringModel",
    "check_output_path",
    "chunked",
    "count_images",
    "decode_items",
    "default_workers",
    "is_model_file",
    "load_model_file",
    "neutralise",
    "no_images_error",
    "open_output",
    "prepare_items",
    "quiet_bomb_warnings",
    "score_batches",
    "score_path",
    "score_prepared",
    "validate_options",
    "write_review_sheet",
]


def score_path(
    path: str | Path,
    model: ScoringModel,
    *,
    output: Path | None = None,
    fmt: str = "csv",
    probs: bool = False,
    workers: int = 1,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_confidence: float = DEFAULT_MIN_CONFIDENCE,
    progress: Callable[[int], None] | None = None,
    on_batch: Callable[[ScoredBatch], None] | None = None,
) -> ScoreSummary:
    """Score every image under ``path``; rows to ``output`` (or stdout); return the summary.

    Raises DataNotFoundError (exit 3) for a missing path or when there is no image at all,
    InvalidInputError (exit 2) for bad options or an output that is an input (nothing is written then).
    Failed images do not raise: they are error rows, counted in ``summary.failed``.
    """
    validate_options(
        workers=workers,
        batch_size=batch_size,
        max_pixels=max_pixels,
        min_confidence=min_confidence,
        fmt=fmt,
    )
    if output is not None:
        check_output_path(output, inputs=Path(path), model=model.name)
    start = time.perf_counter()
    discovery = Discovery(path)
    items = iter(discovery)
    first = next(items, None)
    if first is None:
        raise no_images_error(path, discovery.skipped)
    summary = ScoreSummary(model=model.name, root=str(path), min_confidence=min_confidence)
    with open_output(output) as stream:
        writer = RowWriter(stream, fmt, model=model.name, probs=probs)
        writer.header()
        batches = score_batches(
            itertools.chain([first], items),
            model,
            workers=workers,
            batch_size=batch_size,
            max_pixels=max_pixels,
        )
        for batch in batches:
            writer.write(batch)
            if output is None:
                stream.flush()
            summary.add(batch)
            if on_batch is not None:
                on_batch(batch)
            if progress is not None:
                progress(len(batch))
    summary.add_discovery(discovery)
    summary.seconds = time.perf_counter() - start
    return summary
