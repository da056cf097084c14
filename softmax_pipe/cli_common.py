"""What every CLI module shares: the error boundary, stderr console and common options.

Imports only typer (and rich through it) at module level, so ``--help`` stays fast.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer._click.exceptions import (  # typer vendors click since 0.22
    ClickException,
    NoArgsIsHelpError,
    UsageError,
)
from typer.core import TyperGroup

from softmax_core import settings
from softmax_core.errors import EXIT_INTERNAL, EXIT_INTERRUPTED, SoftmaxPipeError

SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="MNIST source: 'keras', 'download', a folder of IDX files, or an .npz file. "
        "Default: $SOFTMAX_PIPE_MNIST, else keras if installed, else download.",
        envvar=settings.ENV_MNIST,
        show_envvar=True,
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        help="Cache folder for datasets and pulled models. Default: the user's cache dir.",
        envvar=settings.ENV_CACHE,
        show_envvar=True,
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URI: a folder, file:///path or s3://bucket/prefix. "
        "Default: a folder in the user's data dir.",
        envvar=settings.ENV_REGISTRY,
        show_envvar=True,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        help="S3 endpoint (MinIO, moto...). Default: boto3's own ($AWS_ENDPOINT_URL, profile).",
        envvar="AWS_ENDPOINT_URL",
        show_envvar=True,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document for machines.")]

# Training hyperparameters, shared by `train` and `run`.
EpochsOpt = Annotated[int, typer.Option(min=1, help="Passes over the training set.")]
SeedOpt = Annotated[int, typer.Option(min=0, help="Seed for shuffling: same seed, same weights.")]
DeskewOpt = Annotated[
    bool, typer.Option("--deskew/--no-deskew", help="Deskew images by their moments first.")
]
LearningRateOpt = Annotated[float, typer.Option(help="Initial SGD learning rate.")]
BatchSizeOpt = Annotated[int, typer.Option(min=1, help="Minibatch size.")]
L2Opt = Annotated[float, typer.Option(min=0.0, help="L2 penalty on the weights.")]
LimitOpt = Annotated[int | None, typer.Option(min=1, help="Train on the first N images only.")]


def err(message: str, *, style: str | None = None) -> None:
    """One line on stderr (rich markup off: paths may contain brackets)."""
    from rich.console import Console

    Console(stderr=True, markup=False, highlight=False, soft_wrap=True).print(message, style=style)


DEBUG_OPTION = "--debug"


def _debug_requested(args: Sequence[str]) -> bool:
    """``--debug`` among the root options (before the command name), or SOFTMAX_PIPE_DEBUG=1.

    Read from the raw arguments, not the parsed context, so that errors raised while
    parsing honour it too.
    """
    for arg in args:
        if arg == DEBUG_OPTION:
            return True
        if not arg.startswith("-"):
            break
    return settings.debug_enabled()


def exit_code_for(exc: Exception | KeyboardInterrupt, *, debug: bool) -> int:
    """Report ``exc`` on stderr the one documented way and return its exit code.

    - a :class:`SoftmaxPipeError`: ``error: <message>``, its class's exit code;
    - a usage error (unknown option, bad value, missing argument): one line, exit 2;
      a group called with no arguments prints its help instead;
    - Ctrl-C or SIGTERM: ``interrupted``, exit 130;
    - anything else (a bug): one line naming it and ``run with --debug for the
      traceback``, exit 70.

    With ``debug`` the traceback is printed first (and the exit code stays the same).
    """
    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        return 0
    if isinstance(exc, KeyboardInterrupt):
        err("interrupted")
        return EXIT_INTERRUPTED
    if debug:
        traceback.print_exception(exc)
    if isinstance(exc, UsageError):
        where = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        err(f"error: {exc.format_message()}{where}", style="bold red")
        return exc.exit_code
    if isinstance(exc, ClickException):
        err(f"error: {exc.format_message()}", style="bold red")
        return exc.exit_code
    if isinstance(exc, SoftmaxPipeError):
        err(f"error: {exc}", style="bold red")
        return exc.exit_code
    err(
        f"error: unexpected {type(exc).__name__}: {exc} (a bug; run with --debug "
        "for the traceback)",
        style="bold red",
    )
    return EXIT_INTERNAL


class ErrorBoundary(TyperGroup):
    """The root command: the one place where errors become exit codes (see :func:`exit_code_for`).

    ``main`` runs typer with ``standalone_mode=False`` so that every exception, from
    parsing the arguments or from a command, reaches this one handler: ``softmax-pipe``,
    ``python -m softmax_pipe`` and ``CliRunner.invoke(app, ...)`` all go through it.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            code = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except (Exception, KeyboardInterrupt) as exc:
            code = exit_code_for(exc, debug=_debug_requested(argv))
        else:
            if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent Exit(130)
                err("interrupted")
        if not standalone_mode:
            return code
        sys.exit(code or 0)
