"""softmax-pipe's command line: typer commands over flows, registry and softmax_core."""

from softmax_core.version import package_version

__version__ = package_version()
