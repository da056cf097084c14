"""CLI: ``run``: the training pipeline (ingest → train → gate → publish) as a Prefect flow run.

With no Prefect server configured (no ``PREFECT_API_URL``), Prefect starts a temporary
local server for the run; the command says so in one line. Prefect's own console log
lines are kept off the terminal (they still go to the server, so the UI shows them);
``--verbose`` shows them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from softmax_core import settings
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
    err,
)


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
            min=0.0,
            max=1.0,
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
            min=0.0,
            max=1.0,
            help="Gate: refuse a challenger less accurate than the champion with McNemar p < alpha.",
            rich_help_panel="Gate",
        ),
    ] = settings.ALPHA,
    retries: Annotated[
        int,
        typer.Option(
            min=0,
            help="Retries of the I/O steps (download, registry) on transient errors.",
            rich_help_panel="Prefect",
        ),
    ] = settings.IO_RETRIES,
    retry_delay: Annotated[
        float,
        typer.Option(
            min=0.0,
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
            "(repeatable). Default version: the newest.",
            rich_help_panel="Your data",
        ),
    ] = None,
    data_weight: Annotated[
        int,
        typer.Option(
            min=1,
            help="How many times each dataset image counts in training (oversampling).",
            rich_help_panel="Your data",
        ),
    ] = settings.DATA_WEIGHT,
    min_dataset_accuracy: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Gate: the lowest accuracy on each dataset's holdout that may be published.",
            rich_help_panel="Your data",
        ),
    ] = settings.DATASET_MIN_ACCURACY,
    inbox: Annotated[
        Path | None,
        typer.Option(
            "--inbox",
            help="A labelled folder (subfolders 0 … 9) synced into dataset --inbox-dataset "
            "first (a new version if anything changed), then trained on.",
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
            "features (what the scheduled retraining does).",
            rich_help_panel="Your data",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the training pipeline: ingest, train, gate (floor + champion), publish, promote.

    Exit 0: published. Exit 5: the gate refused it; nothing published.
    Exit 2: bad input, 3: not found, 4: storage or network failure.
    """
    from softmax_core.errors import InvalidInputError

    if no_promote and promote is not None:
        raise InvalidInputError(
            f"--promote {promote} and --no-promote contradict each other; pick one"
        )
    alias = None if no_promote else (promote or settings.ALIAS)
    resolved = settings.Settings.build(source=source, cache_dir=cache_dir, registry=registry)
    if resolved.registry_is_default:
        err(f"registry: {resolved.registry} (the default; set --registry or SOFTMAX_PIPE_REGISTRY)")

    params: dict[str, Any] = {
        "source": resolved.source,
        "registry": resolved.registry,
        "name": name,
        "epochs": epochs,
        "seed": seed,
        "min_accuracy": min_accuracy,
        "promote": alias,
        "warm_start": warm_start,
        "features": features,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "l2": l2,
        "limit": limit,
        "alpha": alpha,
        "endpoint_url": endpoint_url,
        "cache_dir": str(resolved.cache_dir),
        "io_retries": retries,
        "io_retry_delay": retry_delay,
        "datasets": dataset or None,
        "data_weight": data_weight,
        "min_dataset_accuracy": min_dataset_accuracy,
        "inbox": str(inbox) if inbox is not None else None,
        "inbox_dataset": inbox_dataset,
        "skip_unchanged": skip_unchanged,
    }
    from flows.runner import run_training

    summary = run_training(params, verbose=verbose, say=err)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    if summary["skipped"]:
        typer.echo(f"{summary['reason']}: {summary['champion']} already has this data and code")
        return
    gate = summary["gate"]
    typer.echo(f"published {summary['ref']} to {summary['registry']}")
    typer.echo(
        f"  test accuracy {summary['accuracy']:.4f} on {gate['n']} images; {gate['message']}"
    )
    for domain, m in summary["domains"].items():
        champ = m["champion_accuracy"]
        vs = f" (champion {champ:.4f})" if champ is not None else ""
        typer.echo(f"  {domain} holdout accuracy {m['accuracy']:.4f} on {m['n']} images{vs}")
    if summary["promoted"]:
        typer.echo(f"  {summary['name']}@{summary['promoted']} -> {summary['ref']}")
    if summary["warm_start_from"]:
        typer.echo(f"  warm-started from {summary['warm_start_from']}")
    typer.echo(f"  flow run {summary['flow_run_name']} ({summary['flow_run_id']})")
