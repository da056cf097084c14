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
  shards written (the UI's bar), and returns the :class:`~softmax_core.scoring.ScoreSummary`.

The task runner is pluggable: :func:`run_batch_scoring` uses Prefect's thread pool by
default, or a ``DaskTaskRunner`` (prefect-dask, the ``dask`` extra) connected to
``dask_address`` so the shards run on a Dask cluster. Failed images are rows, not task
failures: the run completes and its summary counts them (the CLI exits 1).

From Python::

    from flows.scoring import run_batch_scoring
    summary = run_batch_scoring("./images", model="model.npz", output=Path("scores.csv"))
"""

from __future__ import annotations

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

from flows._common import IN_MEMORY, STORAGE_RETRY, RegistryLocation, io_retry_options
from registry.scoring import load_scoring_model
from softmax_core import scoring
from softmax_core.errors import (
    InvalidInputError,
    ServiceUnavailableError,
    SoftmaxPipeError,
)
from softmax_core.escaping import markdown
from softmax_core.settings import IO_RETRIES, IO_RETRY_DELAY

FLOW_NAME = "batch-scoring"
SUMMARY_KEY = "scoring-summary"
PROGRESS_KEY = "scoring-progress"
DEFAULT_SHARD_SIZE = 4096


@dataclass(frozen=True)
class Listing:
    """The walk of PATH: the images in order, and what was skipped."""

    items: list[scoring.Item]
    skipped: int
    skipped_by_ext: dict[str, int]
    loops: int


@task(name="pull-model", retry_condition_fn=STORAGE_RETRY, **IN_MEMORY)
def pull_model(ref: str, location: RegistryLocation) -> scoring.ScoringModel:
    """A model file, or ``ref`` pulled from the registry (verified, cached)."""
    return load_scoring_model(
        ref, registry=location.uri, endpoint_url=location.endpoint_url, cache_dir=location.cache_dir
    )


@task(name="list-images", **IN_MEMORY)
def list_images(path: str) -> Listing:
    """Every image under ``path`` in the walk's order (exit 2 when it does not exist)."""
    discovery = scoring.Discovery(path)
    items = list(discovery)
    return Listing(
        items=items,
        skipped=discovery.skipped,
        skipped_by_ext=dict(discovery.skipped_by_ext),
        loops=discovery.loops,
    )


@task(name="score-shard", **IN_MEMORY)
def score_shard(
    items: list[scoring.Item], model: scoring.ScoringModel, batch_size: int, max_pixels: int
) -> list[scoring.ScoredBatch]:
    """Score one shard here, in batches; failed images are error rows, never a failure."""
    return list(
        scoring.score_batches(items, model, workers=1, batch_size=batch_size, max_pixels=max_pixels)
    )


def shards(items: list[scoring.Item], shard_size: int, batch_size: int) -> list[list[scoring.Item]]:
    """Consecutive shards of ``shard_size`` rounded up to a whole number of batches."""
    size = -(-shard_size // batch_size) * batch_size
    return [items[i : i + size] for i in range(0, len(items), size)]


@flow(name=FLOW_NAME, persist_result=False, log_prints=False)
def batch_scoring(
    path: str,
    model: str = scoring.DEFAULT_MODEL,
    registry: str | None = None,
    endpoint_url: str | None = None,
    cache_dir: str | None = None,
    output: str | None = None,
    fmt: str = "csv",
    probs: bool = False,
    batch_size: int = scoring.DEFAULT_BATCH_SIZE,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_pixels: int = scoring.DEFAULT_MAX_PIXELS,
    min_confidence: float = scoring.DEFAULT_MIN_CONFIDENCE,
    io_retries: int = IO_RETRIES,
    io_retry_delay: float = IO_RETRY_DELAY,
) -> scoring.ScoreSummary:
    """Score every image under ``path`` with ``model``; rows to ``output`` (or stdout).

    Raises InvalidInputError (a missing path, bad options), DataNotFoundError (no image
    at all: nothing is written) and ModelNotFoundError.
    """
    from softmax_core.settings import Settings

    start = time.perf_counter()
    scoring.validate_options(
        batch_size=batch_size, max_pixels=max_pixels, min_confidence=min_confidence, fmt=fmt
    )
    if not (isinstance(shard_size, int) and shard_size >= 1):
        raise InvalidInputError(f"shard_size={shard_size!r} is invalid; expected an integer >= 1")
    out = Path(output) if output else None
    if out is not None:
        scoring.check_output_path(out, inputs=Path(path), model=model)
    settings = Settings.build(registry=registry, cache_dir=cache_dir)
    location = RegistryLocation(
        uri=settings.registry, endpoint_url=endpoint_url, cache_dir=settings.cache_dir
    )
    logger = get_run_logger()

    listing = list_images(path)
    if not listing.items:
        raise scoring.no_images_error(path, listing.skipped)
    the_model = pull_model.with_options(**io_retry_options(io_retries, io_retry_delay))(
        model, location
    )
    parts = shards(listing.items, shard_size, batch_size)
    logger.info(
        "scoring %d images under %s with %s in %d shards",
        len(listing.items),
        path,
        the_model.name,
        len(parts),
    )
    futures = score_shard.map(
        parts, unmapped(the_model), unmapped(batch_size), unmapped(max_pixels)
    )
    progress = create_progress_artifact(
        0.0, key=PROGRESS_KEY, description=f"scoring: percent of {len(parts)} shards written"
    )

    summary = scoring.ScoreSummary(model=the_model.name, root=path, min_confidence=min_confidence)
    summary.skipped = listing.skipped
    summary.skipped_by_ext.update(listing.skipped_by_ext)
    summary.loops = listing.loops
    with scoring.open_output(out) as stream:
        writer = scoring.RowWriter(stream, fmt, model=the_model.name, probs=probs)
        writer.header()
        for done, future in enumerate(futures, 1):  # in shard order: the output follows the walk
            for batch in future.result():
                writer.write(batch)
                summary.add(batch)
            update_progress_artifact(progress, 100.0 * done / len(parts))  # type: ignore[arg-type]
    summary.seconds = time.perf_counter() - start
    logger.info("scored %d images, %d failed", summary.scored, summary.failed)
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown=summary.markdown(),
        description=markdown(f"Scoring {path} with {the_model.name}"),
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

    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port or 8786
    except ValueError as e:
        raise InvalidInputError(f"--dask-address {address!r} is not host:port ({e})") from None
    if not host:
        raise InvalidInputError(f"--dask-address {address!r} has no host; expected tcp://host:port")
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ServiceUnavailableError(
            f"cannot reach the Dask scheduler at {address}: {e.strerror or e}; "
            "check --dask-address and that the scheduler is up"
        ) from None


def run_batch_scoring(
    path: str,
    *,
    model: str = scoring.DEFAULT_MODEL,
    registry: str | None = None,
    endpoint_url: str | None = None,
    cache_dir: Path | str | None = None,
    output: Path | None = None,
    fmt: str = "csv",
    probs: bool = False,
    batch_size: int = scoring.DEFAULT_BATCH_SIZE,
    shard_size: int = DEFAULT_SHARD_SIZE,
    max_pixels: int = scoring.DEFAULT_MAX_PIXELS,
    min_confidence: float = scoring.DEFAULT_MIN_CONFIDENCE,
    dask_address: str | None = None,
    workers: int | None = None,
) -> scoring.ScoreSummary:
    """Run the ``batch-scoring`` flow with the chosen task runner; return its summary."""
    run = batch_scoring.with_options(task_runner=task_runner_for(dask_address, workers))
    try:
        return run(
            path,
            model=model,
            registry=registry,
            endpoint_url=endpoint_url,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            output=str(output) if output is not None else None,
            fmt=fmt,
            probs=probs,
            batch_size=batch_size,
            shard_size=shard_size,
            max_pixels=max_pixels,
            min_confidence=min_confidence,
        )
    except SoftmaxPipeError:
        raise
    except Exception as e:  # the cluster itself failed: unreachable, a worker lost...
        if not dask_address:
            raise
        raise ServiceUnavailableError(
            f"scoring on the Dask cluster at {dask_address} failed: {type(e).__name__}: {e}"
        ) from e
