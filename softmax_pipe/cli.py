"""The ``softmax-pipe`` command line: thin typer commands over library functions.

Exit codes (see ``softmax_core.errors``): 0 success, 1 partial failure, 2 usage or bad
input, 3 not found, 4 storage or network failure, 5 accuracy gate failed.

Heavy modules (numpy, Prefect, boto3, Pillow) are imported inside the commands, so
``softmax-pipe --help`` answers fast.
"""

from __future__ import annotations

import typer

from softmax_pipe import cli_core, cli_registry, cli_run, cli_score, cli_serve

app = typer.Typer(
    name="softmax-pipe",
    help="Train, gate, publish and score a softmax-regression digit classifier.\n\n"
    "Exit codes: 0 ok, 1 partial failure, 2 bad input, 3 not found, "
    "4 storage/network failure, 5 accuracy gate failed.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

cli_core.register(app)
cli_run.register(app)
cli_score.register(app)
cli_registry.register(app)
cli_serve.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
