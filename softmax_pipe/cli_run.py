"""CLI: ``run``: the training pipeline (ingest → train → gate → publish) as a Prefect flow run.

With no Prefect server configured (no ``PREFECT_API_URL``), Prefect starts a temporary
local server for the run; the command says so in one line. Prefect's own console log
lines are kept off the terminal (they still go to the server, so the UI shows them);
``--verbose`` shows them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from softmax_pipe.cli_common import (
    BatchSizeOpt,
    CacheOpt,
    DeskewOpt,
    EndpointOpt,
    EpochsOpt,
    JsonOpt,
    L2Opt,
    LearningRateOpt,
    LimitOpt,
    RegistryOpt,
    SeedOpt,
    SourceOpt,
    err,
    errors_to_exit,
)


def register(app: typer.Typer) -> None:
    """Add ``run`` to the main app."""
    app.command("run")(run)


@errors_to_exit
def run(
    source: SourceOpt = None,
    registry: RegistryOpt = None,
    name: Annotated[str, typer.Option("--name", help="Model name in the registry.")] = "mnist",
    epochs: EpochsOpt = 4,
    seed: SeedOpt = 0,
    min_accuracy: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Gate: the lowest test accuracy that may be published."
        ),
    ] = 0.95,
    promote: Annotated[
        str | None,
        typer.Option(
            "--promote",
            metavar="ALIAS",
            help="Move this alias to the new version (compare-and-swap). The challenger is "
            "gated against, and --warm-start starts from, the model behind it. "
            "Default: champion.",
        ),
    ] = None,
    no_promote: Annotated[
        bool, typer.Option("--no-promote", help="Publish without moving any alias.")
    ] = False,
    warm_start: Annotated[
        bool,
        typer.Option("--warm-start", help="Start training from the champion's weights."),
    ] = False,
    deskew: DeskewOpt = True,
    learning_rate: LearningRateOpt = 0.5,
    batch_size: BatchSizeOpt = 128,
    l2: L2Opt = 1e-5,
    limit: LimitOpt = None,
    alpha: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Gate: refuse a challenger less accurate than the champion with McNemar p < alpha.",
        ),
    ] = 0.05,
    retries: Annotated[
        int,
        typer.Option(
            min=0, help="Retries of the I/O steps (download, registry) on transient errors."
        ),
    ] = 3,
    retry_delay: Annotated[
        float, typer.Option(min=0.0, help="Seconds before the first retry; doubled for each next.")
    ] = 2.0,
    endpoint_url: EndpointOpt = None,
    cache_dir: CacheOpt = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show Prefect's own log lines on stderr.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the training pipeline: ingest, train, gate (floor + champion), publish, promote.

    Exit 0: published. Exit 5: the gate refused it; nothing published.
    Exit 2: bad input, 3: not found, 4: storage or network failure.
    """
    from softmax_core.errors import InvalidInputError
    from softmax_core.settings import Settings

    if no_promote and promote is not None:
        raise InvalidInputError(
            f"--promote {promote} and --no-promote contradict each other; pick one"
        )
    alias = None if no_promote else (promote or "champion")
    settings = Settings.build(source=source, cache_dir=cache_dir, registry=registry)
    if settings.registry_is_default:
        err(f"registry: {settings.registry} (the default; set --registry or SOFTMAX_PIPE_REGISTRY)")

    params: dict[str, Any] = {
        "source": settings.source,
        "registry": settings.registry,
        "name": name,
        "epochs": epochs,
        "seed": seed,
        "min_accuracy": min_accuracy,
        "promote": alias,
        "warm_start": warm_start,
        "deskew": deskew,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "l2": l2,
        "limit": limit,
        "alpha": alpha,
        "endpoint_url": endpoint_url,
        "cache_dir": str(settings.cache_dir),
        "io_retries": retries,
        "io_retry_delay": retry_delay,
    }
    summary = run_pipeline(params, verbose=verbose)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    gate = summary["gate"]
    typer.echo(f"published {summary['ref']} to {summary['registry']}")
    typer.echo(
        f"  test accuracy {summary['accuracy']:.4f} on {gate['n']} images; {gate['message']}"
    )
    if summary["promoted"]:
        typer.echo(f"  {summary['name']}@{summary['promoted']} -> {summary['ref']}")
    if summary["warm_start_from"]:
        typer.echo(f"  warm-started from {summary['warm_start_from']}")
    typer.echo(f"  flow run {summary['flow_run_name']} ({summary['flow_run_id']})")


def run_pipeline(params: dict[str, Any], *, verbose: bool = False) -> dict[str, Any]:
    """Run the training flow with ``params``; return its summary or raise its error.

    Says in one line when Prefect will start a temporary server. A failed run raises the
    exception that failed it (a GateFailedError for a gate refusal, exit 5).
    """
    from prefect.settings import PREFECT_API_URL

    from flows.training import training_pipeline
    from softmax_core.errors import SoftmaxPipeError, StorageError

    api = PREFECT_API_URL.value()
    if not api:
        err(
            "prefect: no PREFECT_API_URL configured; using a temporary local Prefect server "
            "for this run (set PREFECT_API_URL to use a running server)"
        )
    try:
        with _quiet_prefect(verbose, temporary_server=not api):
            state = training_pipeline(**params, return_state=True)
        if state.is_completed():
            result: dict[str, Any] = state.result()
            return result
        exc = state.result(raise_on_failure=False)
        if isinstance(exc, BaseException):
            raise exc
        raise SoftmaxPipeError(f"flow run ended {state.type.value}: {state.message}")
    except _http_errors() as e:
        raise StorageError(
            f"the Prefect API at {api or 'the temporary server'} failed: {type(e).__name__}: {e}; "
            "check PREFECT_API_URL and that the server is up"
        ) from e


def _http_errors() -> tuple[type[BaseException], ...]:
    import httpx

    return (httpx.HTTPError,)


@contextmanager
def _quiet_prefect(verbose: bool, temporary_server: bool) -> Iterator[None]:
    """Keep Prefect's console log lines off the terminal for the run.

    Its console handler is raised above CRITICAL (the API handler still sends every line
    to the server, so the UI shows them). A temporary server's own logs are turned down
    too, and since Prefect stops that server at exit and says so, the console stays quiet
    through the exit as well.
    """
    import atexit
    import os

    if verbose:
        yield
        return
    handlers = _console_handlers()
    saved = [(h, h.level) for h in handlers]
    # Read by the temporary server's subprocess when it starts: its own logs down, and no
    # telemetry heartbeat (a throw-away server has nothing to report, and the heartbeat's
    # writes race the run's on SQLite: "database is locked" tracebacks on the terminal).
    server_env = {
        "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    added = [k for k in server_env if temporary_server and k not in os.environ]
    for key in added:
        os.environ[key] = server_env[key]
    _silence(handlers)
    try:
        yield
    finally:
        if temporary_server:
            atexit.register(_silence, handlers)  # runs before Prefect's (earlier) stop hook
        for key in added:
            os.environ.pop(key, None)
        for handler, level in saved:
            handler.setLevel(level)


def _console_handlers() -> list[Any]:
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    loggers = [logging.getLogger()] + [
        lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    found: dict[int, Any] = {}
    for lg in loggers:
        for h in lg.handlers:
            if isinstance(h, PrefectConsoleHandler):
                found[id(h)] = h
    return list(found.values())


def _silence(handlers: list[Any]) -> None:
    import logging

    for handler in handlers:
        handler.setLevel(logging.CRITICAL + 1)
