"""Batch scoring as a Prefect 3 flow: pull the model once, list the folder, score in shards.

The flow body reads as the job; every task is a thin wrapper over
``softmax_core.scoring`` (the same functions ``softmax-pipe score`` runs), so the rows
are the same, byte for byte, whichever way they were computed:

- ``pull-model`` (retried on storage errors): the registry's verified, cached pull, once;
- ``list-images``: the deterministic walk of PATH;
- ``score-shard``, mapped over shards of ``shard_size`` images (a whole number of
  batches, so each batch holds the same images as in the local command): decode,
  MNIST-normalise, apply the model's preprocessing, predict;
- the flow writes one merged output, in the walk's order (stdout, or a temporary file
  renamed over ``output``), keeps a ``scoring-progress`` artifact at the percent of
  shards written (the UI's bar);
- ``watch-run`` (unless ``output.profile`` is off): the run's profile and its drift check
  (``registry.monitoring``), beside the output and in the registry; a drift is a warning
  in the log and the event ``softmax-pipe.scoring.drift``, linked to the run;
- the flow returns the :class:`~softmax_core.scoring.ScoreSummary`.

The flow takes the parts of a :class:`~softmax_core.requests.ScoringRequest` (input, model,
output, performance, review), the object ``softmax-pipe score`` builds too, as its
parameters. The task runner is
pluggable: :func:`run_batch_scoring` uses Prefect's thread pool by default
(``performance.workers`` threads), or a ``DaskTaskRunner`` (prefect-dask, the ``dask``
extra) connected to ``dask_address`` so the shards run on a Dask cluster. Failed images
are rows, not task failures: the run completes and its summary counts them (the CLI
exits 1). A review queue needs the local command (``softmax-pipe score --review``).

From Python::

    from flows.scoring import run_batch_scoring
    from softmax_core.requests import ModelRef, Output, ScoringRequest

    request = ScoringRequest("./images", ModelRef("model.npz"), Output("scores.csv"))
    summary = run_batch_scoring(request)
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task, unmapped
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)

from flows._common import IN_MEMORY, STORAGE_RETRY, io_retry_options
from softmax_core import scoring
from softmax_core.errors import (
    InvalidInputError,
    ServiceUnavailableError,
    SoftmaxPipeError,
)
from softmax_core.escaping import markdown
from softmax_core.model import Model
from softmax_core.modelcheck import read_model_bytes
from softmax_core.monitoring import Profile
from softmax_core.requests import ModelRef, Output, Performance, Review, ScoringRequest, parts

FLOW_NAME = "batch-scoring"
SUMMARY_KEY = "scoring-summary"
PROGRESS_KEY = "scoring-progress"


@dataclass(frozen=True)
class Listing:
    """The walk of PATH: the images in order, what was skipped, and what opens them (None:
    local files; an ``s3://`` input's reader, which each worker uses with its own client)."""

    items: list[scoring.Item]
    skipped: int
    skipped_by_ext: dict[str, int]
    loops: int
    reader: scoring.Reader | None = None


@task(name="pull-model", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def pull_model(ref: ModelRef) -> Model:
    """A model file, or the reference pulled from the registry (verified, cached)."""
    from registry import open_model

    return open_model(ref)


@task(name="list-images", **IN_MEMORY)
def list_images(path: str, endpoint_url: str | None = None) -> Listing:
    """Every image under ``path`` in the walk's order: a folder, or an ``s3://`` prefix
    (at ``endpoint_url``, the registry's) listed in the same order."""
    from registry.objects import ObjectSource

    source: scoring.Source = (
        ObjectSource(path, endpoint_url=endpoint_url)
        if scoring.is_uri(path)
        else scoring.Discovery(path)
    )
    items = list(source)
    return Listing(
        items=items,
        skipped=source.skipped,
        skipped_by_ext=dict(source.skipped_by_ext),
        loops=source.loops,
        reader=source.reader,
    )


@task(name="score-shard", **IN_MEMORY)
def score_shard(
    items: list[scoring.Item],
    model: Model,
    batch_size: int,
    max_pixels: int,
    reader: scoring.Reader | None = None,
) -> list[scoring.ScoredBatch]:
    """Score one shard here, in batches; failed images are error rows, never a failure.

    With ``reader`` (an ``s3://`` input) the items are object keys this worker fetches
    itself, with its own client and credentials: workers share nothing but the store."""
    return list(
        scoring.score_batches(
            items,
            model,
            workers=1,
            batch_size=batch_size,
            max_pixels=max_pixels,
            reader=reader,
        )
    )


@task(name="watch-run", **IN_MEMORY)
def watch_run(
    summary: scoring.ScoreSummary, model: Model, request: ScoringRequest
) -> tuple[Profile, tuple[str, ...], tuple[str, ...]]:
    """The run's profile, checked for drift against the model's reference, written beside
    the output and into the registry; a drift emits ``softmax-pipe.scoring.drift`` (linked
    to this run). Returns (profile, where it was written, what could not be done)."""
    from flows.events import registry_listeners
    from registry.monitoring import watch

    profile = summary.counts.profile(model=model.ref, input=request.input)
    done = watch(
        profile, model, request.model, output=request.output.path, listeners=registry_listeners()
    )
    return done.profile, done.places, done.problems


def prepare(request: ScoringRequest) -> ScoringRequest:
    """The request with the registry and cache folder filled in, after the checks that need
    no Prefect server (the CLI runs them before it starts one, the flow again): no review
    queue (it needs the local command), :func:`softmax_core.scoring.check_request` (PATH,
    the output), and a model file that exists and can be read.

    Raises InvalidInputError (exit 2) or DataNotFoundError (exit 3), as the local
    command does before it reads the model."""
    run = request.resolved()
    if run.review.queue is not None:
        raise InvalidInputError("--review runs with the local command; drop --flow")
    scoring.check_request(run)
    if run.model.is_file:
        read_model_bytes(Path(run.model.ref))
    return run


def shards(items: list[scoring.Item], shard_size: int, batch_size: int) -> list[list[scoring.Item]]:
    """Consecutive shards of ``shard_size`` rounded up to a whole number of batches."""
    size = -(-shard_size // batch_size) * batch_size
    return [items[i : i + size] for i in range(0, len(items), size)]


@flow(name=FLOW_NAME, persist_result=False, log_prints=False)
def batch_scoring(
    input: str,
    model: ModelRef = ModelRef(),
    output: Output = Output(),
    performance: Performance = Performance(),
    review: Review = Review(),
) -> scoring.ScoreSummary:
    """Score every image under ``input`` with ``model``; rows to ``output`` (or stdout):
    one :class:`ScoringRequest`, given by parts.

    Raises DataNotFoundError (a missing path; no image at all: nothing is written),
    InvalidInputError (an output that is an input, a review queue) and ModelNotFoundError.
    """
    start = time.perf_counter()
    run = prepare(ScoringRequest(input, model, output, performance, review))
    from registry.objects import output_sink

    sink = output_sink(run)  # None: a local file, or stdout
    out, perf = run.output, run.performance
    logger = get_run_logger()

    listing = list_images(run.input, run.model.location.endpoint_url)
    if not listing.items:
        raise scoring.no_images_error(run.input, listing.skipped_by_ext)
    the_model = pull_model.with_options(**io_retry_options(perf.retries))(run.model)
    pieces = shards(listing.items, perf.shard_size, perf.batch_size)
    logger.info(
        "scoring %d images under %s with %s in %d shards",
        len(listing.items),
        run.input,
        the_model.ref,
        len(pieces),
    )
    futures = score_shard.map(
        pieces,
        unmapped(the_model),
        unmapped(perf.batch_size),
        unmapped(perf.max_pixels),
        unmapped(listing.reader),
    )
    progress = create_progress_artifact(
        0.0, key=PROGRESS_KEY, description=f"scoring: percent of {len(pieces)} shards written"
    )

    summary = scoring.ScoreSummary(
        model=the_model.ref, root=run.input, min_confidence=run.review.min_confidence
    )
    summary.skipped = listing.skipped
    summary.skipped_by_ext.update(listing.skipped_by_ext)
    summary.loops = listing.loops
    rows_to = sink() if sink is not None else scoring.open_output(out.file)
    threshold = scoring.reject_threshold(run, the_model)
    with rows_to as stream:
        writer = scoring.RowWriter(
            stream, out.format, model=the_model.ref, probs=out.probs, classes=the_model.n_classes
        )
        writer.header()
        for done, future in enumerate(futures, 1):  # in shard order: the output follows the walk
            for scored in future.result():
                batch = scored if threshold is None else scoring.with_rejects(scored, threshold)
                writer.write(batch)
                summary.add(batch)
            update_progress_artifact(progress, 100.0 * done / len(pieces))  # type: ignore[arg-type]
    if sink is None and out.file is not None:
        scoring.drop_stale_profile(run, summary)
    summary.seconds = time.perf_counter() - start
    logger.info(
        "scored %d images, %d rejected, %d failed",
        summary.scored,
        summary.rejected,
        summary.failed,
    )
    if out.profile:
        watched = watch_run(summary, the_model, run)
        summary.profile, summary.profile_places, summary.profile_problems = watched
        drift = watched[0].drift
        level = logging.WARNING if drift is not None and drift.flagged else logging.INFO
        for line in summary.profile_lines():
            logger.log(level, line)
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=summary.markdown(),
        description=markdown(f"Scoring {run.input} with {the_model.ref}"),
    )
    return summary


def task_runner_for(dask_address: str | None, workers: int | None = None) -> Any:
    """A DaskTaskRunner on ``dask_address``, else Prefect's thread pool (``workers`` threads)."""
    if dask_address:
        try:
            from prefect_dask.task_runners import DaskTaskRunner
        except ImportError:
            raise InvalidInputError(
                "--dask-address needs prefect-dask: pip install 'softmax-pipe[dask]'"
            ) from None
        check_reachable(dask_address)
        return DaskTaskRunner(address=dask_address)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=workers or scoring.default_workers())


def check_reachable(address: str, timeout: float = 10.0) -> None:
    """ServiceUnavailableError (exit 4) now, with one clear line, when nothing listens at a Dask
    scheduler address (``tcp://host:8786``, ``host:port``); before any flow run starts."""
    import socket
    from urllib.parse import urlsplit

    from softmax_core.urls import redact

    shown = redact(address)
    try:
        parts = urlsplit(address if "://" in address else f"tcp://{address}")
        host, port = parts.hostname, parts.port or 8786
    except ValueError:  # its message quotes the address
        raise InvalidInputError(f"--dask-address {shown!r} is not host:port") from None
    if not host:
        raise InvalidInputError(f"--dask-address {shown!r} has no host; expected tcp://host:port")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ServiceUnavailableError(
            f"cannot reach the Dask scheduler at {shown}: {e.strerror or e}; "
            "check --dask-address and that the scheduler is up"
        ) from None


def run_batch_scoring(
    request: ScoringRequest, *, dask_address: str | None = None
) -> scoring.ScoreSummary:
    """Run the ``batch-scoring`` flow with the chosen task runner; return its summary."""
    runner = task_runner_for(dask_address, request.performance.workers)
    try:
        summary: scoring.ScoreSummary = batch_scoring.with_options(task_runner=runner)(
            **parts(request)
        )
        return summary
    except SoftmaxPipeError:
        raise
    except Exception as e:  # the cluster itself failed: unreachable, a worker lost...
        if not dask_address:
            raise
        raise ServiceUnavailableError(
            f"scoring on the Dask cluster at {dask_address} failed: {type(e).__name__}: {e}"
        ) from e
