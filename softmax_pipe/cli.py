"""The ``softmax-pipe`` command line: thin typer commands over library functions.

Exit codes: the README's table, generated from ``softmax_core.errors`` (0 success,
1 partial failure, 2 usage or bad input, 3 not found, 4 storage, network or Prefect
unreachable, 5 accuracy gate failed, 6 flow run ended without a result, 70 unexpected
error, 77 permission denied by the store, 130 interrupted, 141 stdout closed early).
:class:`softmax_pipe.cli_common.ErrorBoundary` maps them, once, for every command.

Heavy modules (numpy, Prefect, boto3, Pillow, matplotlib) are imported inside the
commands, so ``softmax-pipe --help`` answers fast.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Annotated

import typer

from softmax_core.blas import start_single_threaded
from softmax_pipe import (
    cli_core,
    cli_dataset,
    cli_monitor,
    cli_registry,
    cli_report,
    cli_run,
    cli_score,
    cli_serve,
)
from softmax_pipe.cli_common import DEBUG_KEY, ErrorBoundary, flowed_help

app = typer.Typer(
    name="softmax-pipe",
    cls=ErrorBoundary,
    help="Train, gate, publish and score a softmax-regression digit classifier.\n\n"
    "Exit codes: 0 ok, 1 partial failure, 2 bad input, 3 not found, "
    "4 storage/network failure, 5 accuracy gate failed, 6 flow run ended without a result, "
    "70 unexpected error, 77 permission denied by the store, 130 interrupted, "
    "141 stdout closed early (| head).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 120},
)


def _version(value: bool) -> None:
    if value:
        from softmax_core.version import code_version, package_version

        typer.echo(f"softmax-pipe {package_version()} ({code_version()})")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show the traceback of an error instead of one line (or SOFTMAX_PIPE_DEBUG=1).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the package version and the code version, then exit.",
        ),
    ] = False,
) -> None:
    """Train, gate, publish and score a softmax-regression digit classifier."""
    ctx.meta[DEBUG_KEY] = debug


cli_core.register(app)
cli_run.register(app)
cli_score.register(app)
cli_monitor.register(app)
cli_registry.register(app)
cli_dataset.register(app)
cli_serve.register(app)
cli_report.register(app)
flowed_help(app)


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point: SIGTERM stops a command as Ctrl-C does (exit 130); BLAS
    starts with one thread (``softmax_core.blas``)."""
    signal.signal(signal.SIGTERM, _terminate)
    start_single_threaded()
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
