"""softmax-pipe's command line: typer commands over flows, registry and softmax_core."""

from typing import Any

__all__ = ["__version__"]  # the CLI itself: softmax_pipe.cli:app, `python -m softmax_pipe`


def __getattr__(name: str) -> Any:
    """``softmax_pipe.__version__``, read from the installed metadata when first asked for
    (reading it at import cost every command ~0.1 s)."""
    if name == "__version__":
        from softmax_core.version import package_version

        return package_version()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
