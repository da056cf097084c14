"""What every CLI module shares: the error boundary, stderr console and common options.

Imports only typer (and rich through it) at module level, so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from softmax_core.errors import SoftmaxPipeError

F = TypeVar("F", bound=Callable[..., Any])

SourceOpt = Annotated[
    str | None,
    typer.Option(
        "--source",
        help="MNIST source: 'keras', 'download', a folder of IDX files, or an .npz file. "
        "Default: $SOFTMAX_PIPE_MNIST, else keras if installed, else download.",
        envvar="SOFTMAX_PIPE_MNIST",
        show_envvar=True,
    ),
]
CacheOpt = Annotated[
    str | None,
    typer.Option(
        "--cache-dir",
        help="Cache folder for datasets and pulled models. Default: the user's cache dir.",
        envvar="SOFTMAX_PIPE_CACHE",
        show_envvar=True,
    ),
]
RegistryOpt = Annotated[
    str | None,
    typer.Option(
        "--registry",
        help="Registry URI: a folder, file:///path or s3://bucket/prefix. "
        "Default: a folder in the user's data dir.",
        envvar="SOFTMAX_PIPE_REGISTRY",
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


def fail(exc: SoftmaxPipeError) -> typer.Exit:
    """Print the error as one line and return the Exit carrying its documented code."""
    err(f"error: {exc}", style="bold red")
    return typer.Exit(code=exc.exit_code)


def errors_to_exit(fn: F) -> F:
    """Decorator for commands: a SoftmaxPipeError becomes one line on stderr and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SoftmaxPipeError as e:
            raise fail(e) from None
        except KeyboardInterrupt:
            err("interrupted")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def stdout_is_tty() -> bool:
    return sys.stdout.isatty()


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
