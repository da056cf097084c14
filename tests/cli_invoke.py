"""The CLI run in process, as a user's shell would run it: every argument a string."""

from __future__ import annotations

from typer.testing import CliRunner

from softmax_pipe.cli import app


def invoke(*args: object) -> tuple[int, str, str]:
    """Run ``softmax-pipe ARGS`` and return (exit code, stdout, stderr).

    An exception the CLI's error boundary let through is raised here, so a crash fails the
    test instead of passing for an exit code of 1.
    """
    result = CliRunner().invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr
