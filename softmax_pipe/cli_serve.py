"""CLI: ``serve`` (one box, no work pool) and ``deploy`` (deploy/prefect.yaml on a work pool).

Both talk to the Prefect server named by ``PREFECT_API_URL``; its scheduler creates the
runs. The work happens in ``flows.service``; these commands only parse and print.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from softmax_core import settings
from softmax_pipe.cli_common import EndpointOpt, JsonOpt, err


def register(app: typer.Typer) -> None:
    """Add serve and deploy to the main app."""
    app.command("serve")(serve)
    app.command("deploy")(deploy)


def serve(
    retrain_cron: Annotated[
        str,
        typer.Option(
            "--retrain-cron",
            "--cron",
            help="Cron of the retraining (minute hour day month weekday).",
            rich_help_panel="Schedule",
        ),
    ] = settings.RETRAIN_CRON,
    score_cron: Annotated[
        str,
        typer.Option("--score-cron", help="Cron of the inbox scoring.", rich_help_panel="Schedule"),
    ] = settings.SCORE_CRON,
    timezone: Annotated[
        str, typer.Option(help="Time zone of both crons.", rich_help_panel="Schedule")
    ] = settings.TIMEZONE,
    registry: Annotated[
        str | None,
        typer.Option(
            "--registry",
            help="Registry URI the retraining publishes to and the scoring pulls from. "
            "Default: the local registry in the user's data dir.",
            envvar=settings.ENV_REGISTRY,
            show_envvar=True,
            rich_help_panel="Registry",
        ),
    ] = None,
    name: Annotated[
        str, typer.Option(help="Model name in the registry.", rich_help_panel="Registry")
    ] = settings.MODEL_NAME,
    alias: Annotated[
        str,
        typer.Option(
            help="Alias promoted by retraining, used by scoring.", rich_help_panel="Registry"
        ),
    ] = settings.ALIAS,
    request: Annotated[
        bool,
        typer.Option(
            "--request",
            help="Retraining requests that an approver move the alias instead of promoting "
            "(for a trainer's key, which may not write aliases).",
            rich_help_panel="Registry",
        ),
    ] = False,
    min_accuracy: Annotated[
        float,
        typer.Option(
            help="Gate floor: the lowest test accuracy published.", rich_help_panel="Training"
        ),
    ] = settings.MIN_ACCURACY,
    epochs: Annotated[
        int, typer.Option(help="Epochs per retraining.", rich_help_panel="Training")
    ] = settings.EPOCHS,
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start/--no-warm-start",
            help="Retrain from the champion's weights.",
            rich_help_panel="Training",
        ),
    ] = True,
    inbox: Annotated[
        str | None,
        typer.Option(
            help="Folder of images scored on each scoring run. "
            "Default: inbox/ in the user's data dir.",
            rich_help_panel="Scoring",
        ),
    ] = None,
    labelled: Annotated[
        str | None,
        typer.Option(
            help="Labelled inbox (class folders 0 … 9) each retraining syncs into dataset "
            "'inbox' and trains on. Default: labelled/ in the user's data dir.",
            rich_help_panel="Training",
        ),
    ] = None,
    output: Annotated[
        str | None,
        typer.Option(
            help="File the scoring run writes (CSV). Default: outbox/scores.csv in the user's data dir.",
            rich_help_panel="Scoring",
        ),
    ] = None,
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

    Needs a Prefect server (PREFECT_API_URL). Runs until Ctrl-C; the schedules are
    paused when it stops. Trigger a run by hand with
    `prefect deployment run training-pipeline/retrain`.
    """
    from flows.service import ServeOptions
    from flows.service import serve as serve_deployments
    from softmax_core.requests import Gate, Hyper, Location

    options = ServeOptions.build(
        location=Location(registry=registry, endpoint_url=endpoint_url),
        name=name,
        alias=alias,
        hyper=Hyper(epochs=epochs, warm_start=warm_start),
        gate=Gate(min_accuracy=min_accuracy),
        labelled=labelled,
        inbox=inbox,
        output=output,
        action="request" if request else settings.TARGET_ACTION,
        retrain_cron=retrain_cron,
        score_cron=score_cron,
        timezone=timezone,
    )
    err(f"serving retrain ({retrain_cron}) and score-inbox ({score_cron}), {timezone}")
    serve_deployments(options, limit=limit, replace=replace, say=err)


def deploy(
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
    as_json: JsonOpt = False,
) -> None:
    """Register the prefect.yaml deployments (retrain, score-inbox) on the Prefect server.

    Creates the work pool ('process') and the crash-detection automation, then runs
    `prefect --no-prompt deploy --all --prefect-file deploy/prefect.yaml` in the checkout.
    Then start a worker: `prefect worker start --pool process`.
    """
    from flows.service import project_dir as find_project_dir
    from flows.service import register as register_deployments

    root = find_project_dir(project_dir)
    done = register_deployments(root, prefect_file=prefect_file, automations=automations)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "pools": done.pools,
                    "automations": done.automations,
                    "deployments": done.deployments,
                },
                indent=2,
            )
        )
        return
    for pool, created in done.pools.items():
        typer.echo(f"work pool {pool!r}: {'created' if created else 'exists'}")
    for name in done.automations:
        typer.echo(f"automation {name!r}: applied")
    for name, crons in sorted(done.deployments.items()):
        typer.echo(f"deployment {name}: cron {', '.join(crons) or 'none'}")
    for pool in done.pools:
        typer.echo(f"start a worker: prefect worker start --pool {pool}")
