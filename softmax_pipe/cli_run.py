"""CLI: ``run``: the training pipeline (ingest → train → gate → publish) as a Prefect flow run.

With no Prefect server configured (no ``PREFECT_API_URL``), Prefect starts a temporary
local server for the run; the command says so in one line. Prefect's own console log
lines are kept off the terminal (they still go to the server, so the UI shows them);
``--verbose`` shows them. The lines saying what a first run prepares (MNIST parsed, features,
cluttered digits and non-digits) are on stderr, as ``train`` prints them.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Annotated

import typer

from softmax_core import settings
from softmax_core.words import plural
from softmax_pipe.cli_common import (
    BatchSizeOpt,
    CacheOpt,
    EndpointOpt,
    EpochsOpt,
    FeaturesOpt,
    JsonOpt,
    L2Opt,
    LearningRateOpt,
    LimitOpt,
    RegistryOpt,
    SeedOpt,
    SourceOpt,
    echo,
    err,
    hyper,
    location,
    warnings_on_stderr,
)

if TYPE_CHECKING:
    from flows.records import RunSummary


def register(app: typer.Typer) -> None:
    """Add ``run`` to the main app."""
    app.command("run")(run)


def run(
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    name: Annotated[
        str, typer.Option("--name", help="Model name in the registry.", rich_help_panel="Registry")
    ] = settings.MODEL_NAME,
    epochs: EpochsOpt = settings.EPOCHS,
    seed: SeedOpt = settings.SEED,
    min_accuracy: Annotated[
        float,
        typer.Option(
            help="Gate: the lowest test accuracy that may be published.",
            rich_help_panel="Gate",
        ),
    ] = settings.MIN_ACCURACY,
    promote: Annotated[
        str | None,
        typer.Option(
            "--promote",
            metavar="ALIAS",
            help="Move this alias to the new version (compare-and-swap). The challenger is "
            "gated against, and --warm-start starts from, the model behind it. "
            "Default: champion.",
            rich_help_panel="Registry",
        ),
    ] = None,
    no_promote: Annotated[
        bool,
        typer.Option(
            "--no-promote", help="Publish without moving any alias.", rich_help_panel="Registry"
        ),
    ] = False,
    request: Annotated[
        str | None,
        typer.Option(
            "--request",
            metavar="ALIAS",
            help="Publish, then request that an approver move this alias to the new version "
            "(what a trainer's key, which may not write aliases, does); gated against the "
            "model behind it, as with --promote.",
            rich_help_panel="Registry",
        ),
    ] = None,
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start",
            help="Start training from the champion's weights.",
            rich_help_panel="Training",
        ),
    ] = False,
    features: FeaturesOpt = settings.FEATURES,
    learning_rate: LearningRateOpt = settings.LEARNING_RATE,
    batch_size: BatchSizeOpt = settings.BATCH_SIZE,
    l2: L2Opt = settings.L2,
    limit: LimitOpt = None,
    alpha: Annotated[
        float,
        typer.Option(
            help="Gate: the level of the one-sided tests against the champion.",
            rich_help_panel="Gate",
        ),
    ] = settings.ALPHA,
    margin: Annotated[
        float,
        typer.Option(
            help="Gate: how much less accurate than the champion a challenger may be "
            "(0.005: half a point); shown worse by more (one-sided, at --alpha), on MNIST "
            "or on a dataset's holdout, it is refused.",
            rich_help_panel="Gate",
        ),
    ] = settings.MARGIN,
    max_reject_rate: Annotated[
        float,
        typer.Option(
            help="Gate: the most of MNIST test a model that can reject may reject as not "
            "digits (0.01: 1%).",
            rich_help_panel="Gate",
        ),
    ] = settings.MAX_REJECT_RATE,
    min_negatives_rejected: Annotated[
        float,
        typer.Option(
            help="Gate: the least of the held-out generated non-digits (a seed training "
            "never uses) a model that can reject must reject.",
            rich_help_panel="Gate",
        ),
    ] = settings.MIN_NEGATIVES_REJECTED,
    reject: Annotated[
        bool,
        typer.Option(
            "--reject/--no-reject",
            help="Train the class 'not a digit' (11 classes) from generated non-digits and "
            "your datasets' not-a-digit/ folders; --no-reject: a 10-class model.",
            rich_help_panel="Training",
        ),
    ] = settings.REJECT,
    negatives_share: Annotated[
        float,
        typer.Option(
            help="Generated non-digits trained on, as a share of the MNIST images.",
            rich_help_panel="Training",
        ),
    ] = settings.NEGATIVES_SHARE,
    io_retries: Annotated[
        int,
        typer.Option(
            "--retries",
            help="Retries of the I/O steps (download, registry) on transient errors.",
            rich_help_panel="Prefect",
        ),
    ] = settings.IO_RETRIES,
    io_retry_delay: Annotated[
        float,
        typer.Option(
            "--retry-delay",
            help="Seconds before the first retry; doubled for each next.",
            rich_help_panel="Prefect",
        ),
    ] = settings.IO_RETRY_DELAY,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show Prefect's own log lines on stderr.",
            rich_help_panel="Prefect",
        ),
    ] = False,
    dataset: Annotated[
        list[str] | None,
        typer.Option(
            "--dataset",
            metavar="NAME[:VERSION]",
            help="Also train on this labelled dataset's train split, and gate on its holdout "
            "(repeatable, each dataset once). Default version: the newest.",
            rich_help_panel="Your data",
        ),
    ] = None,
    data_weight: Annotated[
        int | None,
        typer.Option(
            help="How many times each dataset image counts in training (see --weighting). "
            "Default: as many as make your images --data-share of the MNIST images.",
            rich_help_panel="Your data",
        ),
    ] = settings.DATA_WEIGHT,
    data_share: Annotated[
        float,
        typer.Option(
            help="Without --data-weight: your images (all datasets together) count as this "
            "share of the MNIST images trained on (0.1: 20 labelled a digit count 37 times).",
            rich_help_panel="Your data",
        ),
    ] = settings.DATA_SHARE,
    weighting: Annotated[
        str,
        typer.Option(
            help="How a dataset image counts --data-weight times: jitter (repeated in every "
            "epoch, each copy after the first slightly turned, slanted, scaled and moved), "
            "oversample (repeated as it is) or loss (once, its loss weighted).",
            rich_help_panel="Your data",
        ),
    ] = settings.DATA_WEIGHTING,
    min_dataset_accuracy: Annotated[
        float,
        typer.Option(
            help="Gate: the lowest accuracy on each dataset's holdout that may be published, "
            "applied once the holdout is large enough to measure it (141 images at 0.9).",
            rich_help_panel="Your data",
        ),
    ] = settings.DATASET_MIN_ACCURACY,
    inbox: Annotated[
        str | None,
        typer.Option(
            "--inbox",
            help="A labelled folder (subfolders 0 … 9), or an s3://bucket/prefix/ laid out "
            "as one, synced into dataset --inbox-dataset first (a new version if anything "
            "changed), then trained on.",
            rich_help_panel="Your data",
        ),
    ] = None,
    inbox_dataset: Annotated[
        str,
        typer.Option(help="The dataset --inbox is synced into.", rich_help_panel="Your data"),
    ] = settings.INBOX_DATASET,
    skip_unchanged: Annotated[
        bool,
        typer.Option(
            "--skip-unchanged",
            help="Train nothing when the champion was made from the same data, code and "
            "features, or, with --request, a version still awaiting approval or one an "
            "approver rejected was (what the scheduled retraining does).",
            rich_help_panel="Your data",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the training pipeline: ingest, train, gate (floors, non-inferiority against the
    champion on MNIST; better or not worse on each dataset's holdout), publish, promote
    (or --request the move from an approver).

    Exit 0: published. Exit 5: the gate refused it; nothing published.
    Exit 2: bad input, 3: not found, 4: storage or network failure, 77: the store refused
    this key a write (e.g. promoting with a trainer's key: use --request).
    """
    from softmax_core.errors import InvalidInputError
    from softmax_core.requests import Data, Gate, Retries, Target, TrainingRequest

    given = [
        f"--{flag}" + (f" {value}" if isinstance(value, str) else "")
        for flag, value in (("promote", promote), ("request", request), ("no-promote", no_promote))
        if value
    ]
    if len(given) > 1:
        raise InvalidInputError(f"{' and '.join(given)} contradict each other; pick one")
    action = "request" if request else "publish" if no_promote else "promote"
    job = TrainingRequest(
        data=Data(
            source=source,
            datasets=tuple(dataset or ()),
            data_weight=data_weight,
            data_share=data_share,
            weighting=weighting,  # type: ignore[arg-type]  # checked by Data
            inbox=inbox,
            inbox_dataset=inbox_dataset,
            skip_unchanged=skip_unchanged,
            reject=reject,
            negatives_share=negatives_share,
        ),
        hyper=hyper(
            features=features,
            epochs=epochs,
            seed=seed,
            learning_rate=learning_rate,
            batch_size=batch_size,
            l2=l2,
            limit=limit,
            warm_start=warm_start,
        ),
        gate=Gate(
            min_accuracy=min_accuracy,
            alpha=alpha,
            min_dataset_accuracy=min_dataset_accuracy,
            margin=margin,
            max_reject_rate=max_reject_rate,
            min_negatives_rejected=min_negatives_rejected,
        ),
        target=Target(
            location=location(registry, endpoint_url, cache_dir),
            name=name,
            alias=promote or request or settings.ALIAS,
            action=action,  # type: ignore[arg-type]  # checked by Target
        ),
        retries=Retries(io_retries=io_retries, io_retry_delay=io_retry_delay),
    )
    from flows.events import flush, registry_listeners
    from flows.runner import run_training

    # Prefect's quiet console would swallow a failed webhook's warning: say it here
    said = contextlib.nullcontext() if verbose else warnings_on_stderr("registry.webhooks")
    with said:
        summary = run_training(job, verbose=verbose, say=err)
        try:
            _say(summary, as_json=as_json)
        finally:  # the webhooks the run sent, after the output (bounded); after an error
            flush(registry_listeners())  # line, the exit does it (registry.webhooks)


def _say(summary: RunSummary, *, as_json: bool) -> None:
    """What ``run`` prints: the summary (JSON, or lines for people)."""
    from flows.records import Skipped

    if as_json:
        typer.echo(json.dumps(summary.to_json(), indent=2))
        return
    if isinstance(summary, Skipped):
        typer.echo(summary.message)
        return
    decision, domains = summary.evaluation.decision, summary.evaluation.domains
    typer.echo(f"published {summary.ref} to {summary.registry}")
    typer.echo(
        f"  test accuracy {decision.accuracy:.4f} on {decision.n} {plural(decision.n, 'image')}; "
        f"{decision.message}"
    )
    negatives = summary.evaluation.negatives
    if negatives is not None:
        typer.echo(f"  {negatives.message}")
    for d in domains:
        vs = f" (champion {d.champion_accuracy:.4f}, {d.comparison})" if d.comparison else ""
        echo(f"  {d.domain} holdout accuracy {d.accuracy:.4f} on {d.n} {plural(d.n, 'image')}{vs}")
    for note in summary.notes:
        echo(f"  {note}")
    if summary.promoted:
        typer.echo(f"  {summary.manifest.name}@{summary.promoted} -> {summary.ref}")
    if summary.requested:
        req = summary.requested
        typer.echo(
            f"  requested {req.name}@{req.alias} -> {summary.ref} (request #{req.seq}); an "
            f"approver runs `softmax-pipe registry approve {summary.ref} {req.alias}`"
        )
    if summary.lineage.warm_start_from:
        typer.echo(f"  warm-started from {summary.lineage.warm_start_from}")
    typer.echo(f"  flow run {summary.lineage.flow_run_name} ({summary.lineage.flow_run_id})")
