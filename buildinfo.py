"""Build step: record the commit a wheel is built from, as ``softmax_core/_build.json``.

setuptools runs :class:`BuildPy` (``[tool.setuptools.cmdclass]`` in pyproject.toml) when it
builds a wheel, so every non-editable install, the Docker image's included, carries the
commit it was built from, read by :func:`softmax_core.version.code_version` without any
``.git`` at run time. The commit is ``$SOFTMAX_PIPE_COMMIT`` when set (a build from a copy
without ``.git``: ``docker build --build-arg SOFTMAX_PIPE_COMMIT=$(git rev-parse HEAD)``),
else ``git rev-parse HEAD`` of the tree being built (``+dirty`` when tracked files changed),
else unknown (``null``). An editable install runs from its checkout and asks its git.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from setuptools.command.build_py import build_py

STAMP = Path("softmax_core") / "_build.json"
ENV_COMMIT = "SOFTMAX_PIPE_COMMIT"


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True
    ).stdout.strip()


def build_commit(root: Path) -> str | None:
    """The commit being built: ``$SOFTMAX_PIPE_COMMIT``, else git's, else ``None``."""
    given = os.environ.get(ENV_COMMIT, "").strip()
    if given:
        return given
    if not (root / ".git").exists():
        return None
    try:
        sha = _git(root, "rev-parse", "HEAD")
        dirty = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


class BuildPy(build_py):
    """setuptools' build_py, then the stamp beside the built packages."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # the checkout itself is imported: code_version asks its git
        target = Path(self.build_lib) / STAMP
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({"commit": build_commit(Path.cwd())}) + "\n")
