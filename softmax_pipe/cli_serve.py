"""CLI: ``serve`` (one box, no work pool) and ``deploy`` (deploy/prefect.yaml on a work pool).

Both talk to the Prefect server named by ``PREFECT_API_URL``; its scheduler creates the
runs. The work happens in ``flows.service``; these commands only parse and print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from softmax_core import settings
from softmax_pipe.cli_common import EndpointOpt, JsonOpt, err

if TYPE_CHECKING:
    from flows.service import ServeOptions


def register(app: typer.Typer) -> None:
    """Add serve and deploy to the main app."""
    app.command("serve")(serve)
    app.command("deploy")(deploy)


# What both commands schedule: the same options, declared once here and used plainly by each.
RetrainCronOpt = Annotated[
    str,
    typer.Option(
        "--retrain-cron",
        "--cron",
        help="Cron of the retraining (minute hour day month weekday).",
        rich_help_panel="Schedule",
    ),
]
ScoreCronOpt = Annotated[
    str, typer.Option("--score-cron", help="Cron of the inbox scoring.", rich_help_panel="Schedule")
]
TimezoneOpt = Annotated[
    str, typer.Option(help="Time zone of both crons.", rich_help_panel="Schedule")
]
ServiceRegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URI the retraining publishes to and the scoring pulls from. "
        "Default: $SOFTMAX_PIPE_REGISTRY, registry in a settings file, else the local "
        "registry in the user's data dir.",
        envvar=settings.ENV_REGISTRY,
        show_envvar=True,
        rich_help_panel="Registry",
    ),
]
NameOpt = Annotated[
    str, typer.Option(help="Model name in the registry.", rich_help_panel="Registry")
]
AliasOpt = Annotated[
    str,
    typer.Option(help="Alias promoted by retraining, used by scoring.", rich_help_panel="Registry"),
]
RequestOpt = Annotated[
    bool,
    typer.Option(
        "--request",
        help="Retraining requests that an approver move the alias instead of promoting "
        "(for a trainer's key, which may not write aliases).",
        rich_help_panel="Registry",
    ),
]
MinAccuracyOpt = Annotated[
    float,
    typer.Option(help="Gate: the lowest MNIST test accuracy published.", rich_help_panel="Gate"),
]
AlphaOpt = Annotated[
    float,
    typer.Option(
        help="Gate: the level of the one-sided tests against the champion.", rich_help_panel="Gate"
    ),
]
MarginOpt = Annotated[
    float,
    typer.Option(
        help="Gate: how much less accurate than the champion a challenger may be (0.005: "
        "half a point); refused when shown worse by more.",
        rich_help_panel="Gate",
    ),
]
MaxRejectRateOpt = Annotated[
    float,
    typer.Option(
        help="Gate: the most of MNIST test a model that can reject may reject as not digits.",
        rich_help_panel="Gate",
    ),
]
MinNegativesRejectedOpt = Annotated[
    float,
    typer.Option(
        help="Gate: the least of the held-out generated non-digits it must reject.",
        rich_help_panel="Gate",
    ),
]
MinDatasetAccuracyOpt = Annotated[
    float,
    typer.Option(
        help="Gate: the lowest accuracy on the labelled inbox's holdout, once it is large "
        "enough to measure it.",
        rich_help_panel="Gate",
    ),
]
DataShareOpt = Annotated[
    float,
    typer.Option(
        help="The labelled images count as this share of the MNIST images trained on.",
        rich_help_panel="Training",
    ),
]
EpochsOpt = Annotated[int, typer.Option(help="Epochs per retraining.", rich_help_panel="Training")]
WarmStartOpt = Annotated[
    bool,
    typer.Option(
        "--warm-start/--no-warm-start",
        help="Retrain from the champion's weights.",
        rich_help_panel="Training",
    ),
]
InboxOpt = Annotated[
    str | None,
    typer.Option(
        help="Folder of images scored on each scoring run. Default: inbox/ in the user's data dir.",
        rich_help_panel="Scoring",
    ),
]
LabelledOpt = Annotated[
    str | None,
    typer.Option(
        help="Labelled inbox (class folders 0 … 9) each retraining syncs into dataset "
        "'inbox' and trains on. Default: labelled/ in the user's data dir.",
        rich_help_panel="Training",
    ),
]
OutputOpt = Annotated[
    str | None,
    typer.Option(
        help="File the scoring run writes (CSV). Default: outbox/scores.csv in the user's "
        "data dir.",
        rich_help_panel="Scoring",
    ),
]


def serve(
    ctx: typer.Context,
    retrain_cron: RetrainCronOpt = settings.RETRAIN_CRON,
    score_cron: ScoreCronOpt = settings.SCORE_CRON,
    timezone: TimezoneOpt = settings.TIMEZONE,
    registry: ServiceRegistryOpt = None,
    name: NameOpt = settings.MODEL_NAME,
    alias: AliasOpt = settings.ALIAS,
    request: RequestOpt = False,
    min_accuracy: MinAccuracyOpt = settings.MIN_ACCURACY,
    alpha: AlphaOpt = settings.ALPHA,
    margin: MarginOpt = settings.MARGIN,
    max_reject_rate: MaxRejectRateOpt = settings.MAX_REJECT_RATE,
    min_negatives_rejected: MinNegativesRejectedOpt = settings.MIN_NEGATIVES_REJECTED,
    min_dataset_accuracy: MinDatasetAccuracyOpt = settings.DATASET_MIN_ACCURACY,
    data_share: DataShareOpt = settings.DATA_SHARE,
    epochs: EpochsOpt = settings.EPOCHS,
    warm_start: WarmStartOpt = True,
    inbox: InboxOpt = None,
    labelled: LabelledOpt = None,
    output: OutputOpt = None,
    endpoint_url: EndpointOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="At most this many flow runs at once.", rich_help_panel="Serving"),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            help="Delete same-named deployments of a work pool (softmax-pipe deploy) first.",
            rich_help_panel="Serving",
        ),
    ] = False,
) -> None:
    """Serve scheduled retraining and inbox scoring from this process (no work pool needed).

    Needs a Prefect server (PREFECT_API_URL). Checks every path at once (the registry
    reachable, the MNIST source, the inbox folders, the output's folder writable; a
    missing folder is made; an s3:// inbox or output is checked on S3: listed, written). Runs until Ctrl-C; the schedules are paused when it stops.
    Trigger a run by hand with `prefect deployment run training-pipeline/retrain`.
    """
    from flows.service import serve as serve_deployments

    options = _options(ctx.params)
    serve_deployments(options, limit=limit, replace=replace, say=err)


def _options(params: dict[str, Any]) -> ServeOptions:
    """The requests both commands schedule, from the options they share (click's parsed
    ``ctx.params``: the names of the parameters declared above, the same in both)."""
    from flows.service import ServeOptions
    from softmax_core.requests import Data, Gate, Hyper, Location

    p = params
    return ServeOptions.build(
        location=Location(registry=p["registry"], endpoint_url=p["endpoint_url"]),
        name=p["name"],
        alias=p["alias"],
        hyper=Hyper(epochs=p["epochs"], warm_start=p["warm_start"]),
        gate=Gate(
            min_accuracy=p["min_accuracy"],
            alpha=p["alpha"],
            margin=p["margin"],
            min_dataset_accuracy=p["min_dataset_accuracy"],
            max_reject_rate=p["max_reject_rate"],
            min_negatives_rejected=p["min_negatives_rejected"],
        ),
        data=Data(data_share=p["data_share"]),
        action="request" if p["request"] else settings.TARGET_ACTION,
        labelled=p["labelled"],
        inbox=p["inbox"],
        output=p["output"],
        retrain_cron=p["retrain_cron"],
        score_cron=p["score_cron"],
        timezone=p["timezone"],
    )


def deploy(
    ctx: typer.Context,
    project_dir: Annotated[
        Path | None,
        typer.Option(
            help="The softmax-pipe checkout (holds deploy/prefect.yaml and flows/). "
            "Default: $SOFTMAX_PIPE_PROJECT_DIR, else the current directory.",
        ),
    ] = None,
    prefect_file: Annotated[
        Path | None, typer.Option(help="prefect.yaml to deploy (default: deploy/prefect.yaml).")
    ] = None,
    automations: Annotated[
        bool,
        typer.Option(
            "--automations/--no-automations",
            help="Also create/update the automations in deploy/automations/.",
        ),
    ] = True,
    retrain_cron: RetrainCronOpt = settings.RETRAIN_CRON,
    score_cron: ScoreCronOpt = settings.SCORE_CRON,
    timezone: TimezoneOpt = settings.TIMEZONE,
    registry: ServiceRegistryOpt = None,
    name: NameOpt = settings.MODEL_NAME,
    alias: AliasOpt = settings.ALIAS,
    request: RequestOpt = False,
    min_accuracy: MinAccuracyOpt = settings.MIN_ACCURACY,
    alpha: AlphaOpt = settings.ALPHA,
    margin: MarginOpt = settings.MARGIN,
    max_reject_rate: MaxRejectRateOpt = settings.MAX_REJECT_RATE,
    min_negatives_rejected: MinNegativesRejectedOpt = settings.MIN_NEGATIVES_REJECTED,
    min_dataset_accuracy: MinDatasetAccuracyOpt = settings.DATASET_MIN_ACCURACY,
    data_share: DataShareOpt = settings.DATA_SHARE,
    epochs: EpochsOpt = settings.EPOCHS,
    warm_start: WarmStartOpt = True,
    inbox: InboxOpt = None,
    labelled: LabelledOpt = None,
    output: OutputOpt = None,
    endpoint_url: EndpointOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register the prefect.yaml deployments (retrain, score-inbox) on the Prefect server.

    The deployments' parameters, crons and trigger are this command's options (the same
    as serve's: registry, folders, gate, training), written into a copy of prefect.yaml;
    the folders are the worker's, so they are not checked here. Creates the work pool
    ('process') and the crash-detection automation, then runs `prefect --no-prompt deploy
    --all` in the checkout. Then start a worker: `prefect worker start --pool process`.
    """
    from flows.service import project_dir as find_project_dir
    from flows.service import register as register_deployments

    options = _options(ctx.params)
    root = find_project_dir(project_dir)
    done = register_deployments(root, options, prefect_file=prefect_file, automations=automations)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "pools": done.pools,
                    "automations": done.automations,
                    "deployments": done.deployments,
                    "registry": options.training.target.location.registry,
                },
                indent=2,
            )
        )
        return
    for pool, created in done.pools.items():
        typer.echo(f"work pool {pool!r}: {'created' if created else 'exists'}")
    for auto in done.automations:
        typer.echo(f"automation {auto!r}: applied")
    for dep, crons in sorted(done.deployments.items()):
        typer.echo(f"deployment {dep}: cron {', '.join(crons) or 'none'}")
    typer.echo(f"registry: {options.training.target.location.registry}")
    for pool in done.pools:
        typer.echo(f"start a worker: prefect worker start --pool {pool}")
