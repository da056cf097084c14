"""Batch scoring of image folders: discover, decode in parallel, score in batches, stream rows.

The pieces, each usable alone (the ``score`` command and the ``batch-scoring`` flow are
both built from them)::

    Discovery(path)          the images under PATH, walked recursively in a deterministic
                             order (sorted by name, folders and files interleaved);
                             symlinked folders are followed once (no loops); other files
                             are counted as skipped. An object store's prefix is another
                             ``Source`` (``registry.objects``), listed in the same order,
                             with a ``Reader`` that fetches each batch's objects
    decode_items(items)      image files -> MNIST-style 28×28 digits (softmax_core.images),
                             an error reason for each file that failed
    prepare_items(items, m)  decode_items + the model's (``softmax_core.model.Model``)
                             features and prediction: what a worker does with one batch
    score_batches(...)       Item stream -> ScoredBatch stream, in order, with at most a
                             few batches in flight: memory stays flat whatever the size
    RowWriter / open_output  CSV or JSON Lines rows to stdout, or to a temporary file that
                             is renamed over FILE only once everything is written
    ScoreSummary             counts per class, failures with reasons, skipped files, low
                             confidence, for stderr
    ReviewQueue              the unsure images of each batch, copied for a person to label
                             (``review.write_review_sheet`` draws the queue's index.html)
    score(request, model)    all of the above for one ScoringRequest (the model already
                             pulled: ``registry.open_model``), its review queue included;
                             an input or output on an object store comes in as a source
                             and a sink built by ``registry.objects``

Output columns: ``path`` (relative to PATH, ``/``-separated; the file name when PATH
is a file), ``label``, ``confidence``, ``status`` (``ok``/``rejected``/``error``),
``error`` (the reason), ``model`` (the version that scored it), then ``p0``..``p9`` (and
``p_reject`` for a model that can reject) with ``probs``. Failed images are rows with
``status=error``; the run goes on. With the reject option (``review.reject``) and a model
that has the class "not a digit", an image the model calls not a digit, and a blank
page, is a row with ``status=rejected``, an empty label and the reason
(:func:`with_rejects`); a 10-class model's rows are as they always were.

The parent process keeps its BLAS to one thread while the workers decode (through
threadpoolctl, a core dependency); worker processes
limit theirs the same way and set ``OMP_NUM_THREADS=1`` & co. for anything they load.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TextIO

from softmax_core.errors import InvalidInputError
from softmax_core.model import Model
from softmax_core.requests import ScoringRequest
from softmax_core.scoring.decode import (
    STACK_MAX_PIXELS,
    Prepared,
    Reader,
    ScoredBatch,
    decode_items,
    prepare_items,
    score_prepared,
    with_rejects,
)
from softmax_core.scoring.discover import (
    Discovery,
    EntryKind,
    Item,
    Source,
    count_images,
    ext_label,
    is_uri,
    no_images_error,
    walk_order,
)
from softmax_core.scoring.pool import (
    chunked,
    default_workers,
    quiet_pillow_warnings,
    score_batches,
)
from softmax_core.scoring.profile import drop_old_profile, profile_path
from softmax_core.scoring.review import ReviewQueue, check_queue, write_review_sheet
from softmax_core.scoring.summary import MAX_LISTED_FAILURES, ScoreSummary
from softmax_core.scoring.writers import (
    COLUMNS,
    PROB_COLUMNS,
    RowWriter,
    check_output_path,
    check_stdout,
    neutralise,
    open_output,
)

__all__ = [
    "COLUMNS",
    "MAX_LISTED_FAILURES",
    "PROB_COLUMNS",
    "STACK_MAX_PIXELS",
    "Discovery",
    "EntryKind",
    "Item",
    "Prepared",
    "Reader",
    "ReviewQueue",
    "RowWriter",
    "ScoreSummary",
    "ScoredBatch",
    "Sink",
    "Source",
    "check_output_path",
    "check_stdout",
    "chunked",
    "count_images",
    "decode_items",
    "default_workers",
    "drop_stale_profile",
    "ext_label",
    "is_uri",
    "neutralise",
    "no_images_error",
    "open_output",
    "prepare_items",
    "profile_path",
    "quiet_pillow_warnings",
    "reject_threshold",
    "score",
    "score_batches",
    "score_prepared",
    "walk_order",
    "with_rejects",
    "write_review_sheet",
]

Sink = Callable[[], AbstractContextManager[TextIO]]  # opens where the rows go, whole or nothing


def check_request(request: ScoringRequest) -> None:
    """What can be refused before the model is pulled: a missing PATH (exit 3), an output
    that is a folder (or ends in ``/``) or would overwrite an input (exit 2) or that cannot
    be written (exit 4; its missing folders are made; stdout closed), a review queue that
    is a file or inside PATH (exit 2).
    An input or output on an object store (``s3://``) is checked where it is opened
    (``registry.objects``); a review queue needs a local PATH."""
    remote_input = is_uri(request.input)
    if not remote_input:
        Discovery(request.input)
    if request.output.path is None:
        check_stdout()
    elif not is_uri(request.output.path):
        check_output_path(
            request.output.path,  # as typed: request.output.file has lost a trailing slash
            inputs=None if remote_input else Path(request.input),
            model=request.model.ref,
            queue=request.review.queue,
        )
    if request.review.queue is not None:
        if remote_input:
            raise InvalidInputError(
                f"--review copies images into a local queue: it needs a local PATH, not "
                f"{request.input}"
            )
        check_queue(Path(request.review.queue), Path(request.input))


def reject_threshold(request: ScoringRequest, model: Model) -> float | None:
    """The threshold rows are rejected at, or None: the reject option is off, or the model
    cannot reject (10 classes: its rows stay as they were)."""
    if request.review.reject and model.can_reject:
        return request.review.reject_threshold
    return None


def drop_stale_profile(request: ScoringRequest, summary: ScoreSummary) -> None:
    """Once the rows are in place in the request's local output file: remove the profile
    an earlier run left beside it (:func:`drop_old_profile`), which describes other rows; a
    run that writes a profile writes its own next. When it cannot be removed and this run
    writes none, why is a line of the summary (a run that writes one says so if it fails)."""
    problem = drop_old_profile(request.output.path)
    if problem is not None and not request.output.profile:
        summary.profile_problems += (problem,)


def score(
    request: ScoringRequest,
    model: Model,
    *,
    progress: Callable[[int], None] | None = None,
    source: Source | None = None,
    sink: Sink | None = None,
) -> ScoreSummary:
    """Score every image under ``request.input`` with ``model``; rows to the request's
    output (or stdout); the unsure ones into its review queue; return the summary.

    ``source``: the images, when they are not the local path ``request.input`` (an
    object store's prefix); ``sink``: where the rows go, when not the local file or
    stdout ``request.output`` names.

    Raises DataNotFoundError (exit 3) for a missing path or when there is no image at all,
    InvalidInputError (exit 2) for an output that is an input (nothing is written then).
    Failed images do not raise: they are error rows, counted in ``summary.failed``;
    rejected ones are rows too, counted in ``summary.rejected``.
    """
    check_request(request)
    out, perf = request.output, request.performance
    output = out.file if sink is None else None
    start = time.perf_counter()
    discovery: Source = source if source is not None else Discovery(request.input)
    items = iter(discovery)
    first = next(items, None)
    if first is None:
        raise no_images_error(request.input, discovery.skipped_by_ext)
    review = request.review
    queue = (
        ReviewQueue(Path(review.queue), Path(request.input), review.min_confidence)
        if review.queue is not None
        else None
    )
    summary = ScoreSummary(
        model=model.ref, root=request.input, min_confidence=review.min_confidence
    )
    to_stdout = output is None and sink is None
    threshold = reject_threshold(request, model)
    with sink() if sink is not None else open_output(output) as stream:
        writer = RowWriter(
            stream, out.format, model=model.ref, probs=out.probs, classes=model.n_classes
        )
        writer.header()
        if to_stdout:  # a stdout that cannot be written fails now, not as the workers fork
            stream.flush()
        batches = score_batches(
            itertools.chain([first], items),
            model,
            workers=perf.workers or default_workers(),
            batch_size=perf.batch_size,
            max_pixels=perf.max_pixels,
            reader=discovery.reader,
        )
        for scored in batches:
            batch = scored if threshold is None else with_rejects(scored, threshold)
            writer.write(batch)
            if to_stdout:
                stream.flush()
            summary.add(batch)
            if queue is not None:
                queue.add(batch)
            if progress is not None:
                progress(len(batch))
    if output is not None:
        drop_stale_profile(request, summary)
    summary.add_discovery(discovery)
    if queue is not None:
        sheet = write_review_sheet(
            queue.folder, model, min_confidence=queue.min_confidence, reject_threshold=threshold
        )
        summary.add_review(queue, sheet)
    summary.seconds = time.perf_counter() - start
    return summary
