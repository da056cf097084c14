"""The code version recorded in every model's lineage: the commit the code is.

- Run from a checkout (an editable install, a source tree): its git, ``git:<sha>[+dirty]``;
  a stamp written at install time would go stale with the next commit.
- An installed wheel, the Docker image's included (no ``.git`` there): the commit it was
  built from, ``softmax_core/_build.json`` in the installation, written by the build
  (``buildinfo.py``).
- Neither: ``softmax-pipe <version>``.
"""

from __future__ import annotations

import functools
import json
import subprocess
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
#: the build stamp, relative to the installation (site-packages); see buildinfo.py
STAMP = "softmax_core/_build.json"


def package_version() -> str:
    """The installed distribution's version (defined once, in pyproject.toml)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("softmax-pipe")
    except PackageNotFoundError:
        return "0+unknown"


def _checkout_commit(root: Path) -> str | None:
    """``<sha>[+dirty]`` of the git checkout at ``root``, ``None`` when it is not one."""
    if not (root / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()

    try:
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return (sha + ("+dirty" if dirty else "")) if sha else None


def _built_commit() -> str | None:
    """The commit in the installed distribution's build stamp, ``None`` without one. Found
    through the distribution, not beside this file: the Docker worker imports the copy of
    the code in its project folder (/app), and the stamp is in site-packages."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        stamp = Path(str(distribution("softmax-pipe").locate_file(STAMP)))
        commit = json.loads(stamp.read_text())["commit"]
    except (PackageNotFoundError, OSError, ValueError, KeyError, TypeError):
        return None
    return commit if isinstance(commit, str) and commit else None


@functools.cache
def code_version() -> str:
    """``git:<sha>[+dirty]`` of the checkout this runs from, else of the commit this install
    was built from, else ``softmax-pipe <version>``."""
    commit = _checkout_commit(_ROOT) or _built_commit()
    return f"git:{commit}" if commit else f"softmax-pipe {package_version()}"
