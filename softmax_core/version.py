"""The code version recorded in every model's lineage: git SHA when available, else the package version."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path


def package_version() -> str:
    """The installed distribution's version (defined once, in pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("softmax-pipe")
    except PackageNotFoundError:
        return "0+unknown"


@functools.cache
def code_version() -> str:
    """``git:<sha>[+dirty]`` of the checkout this code runs from, else ``softmax-pipe <version>``."""
    root = Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"softmax-pipe {package_version()}"
    if not sha:
        return f"softmax-pipe {package_version()}"
    return f"git:{sha}" + ("+dirty" if dirty else "")
