"""The package version, and the code version recorded in every model's lineage.

The package version is the installed distribution's, which setuptools-scm computes from
git when the package is built (``[tool.setuptools_scm]`` in pyproject.toml): the tag on a
tagged commit (``v0.3.0`` -> ``0.3.0``), else the next version's ``.devN+g<commit>``, with
``.dYYYYMMDD`` when the tree had uncommitted changes. A build from a copy without ``.git``
(the Docker image) is given its version by ``SETUPTOOLS_SCM_PRETEND_VERSION``
(deploy/Dockerfile).

The code version says which commit the running code is:

- run from a git checkout (an editable install, a source tree): ``git:<sha>[+dirty]`` of
  its HEAD, asked now. The package version of an editable install was computed when it was
  installed and goes stale with the next commit; the scheduled retraining compares code
  versions to decide that there is nothing new to learn, so a new commit must show.
- an installed build (a wheel, the Docker image): ``git:<commit>[+dirty]`` read from its
  package version (the ``+g<commit>`` setuptools-scm wrote in at build time);
- otherwise (a release built on its tag, or a build with no commit known):
  ``softmax-pipe <version>``.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
# The local part setuptools-scm writes: +g<commit>, then .d<date> for a dirty tree.
_LOCAL = re.compile(r"\+g([0-9a-f]{7,40})(\.d\d{8})?$")


def package_version() -> str:
    """The installed distribution's version (computed from git when it was built)."""
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


def built_commit(version: str) -> str | None:
    """``<commit>[+dirty]`` from a version setuptools-scm wrote (``0.3.1.dev4+g1a2b3c4``,
    ``...+g1a2b3c4.d20260101`` for a dirty tree); ``None`` when it names none."""
    found = _LOCAL.search(version)
    if found is None:
        return None
    return found.group(1) + ("+dirty" if found.group(2) else "")


@functools.cache
def code_version() -> str:
    """``git:<sha>[+dirty]`` of the checkout this runs from, else of the commit this install
    was built from, else ``softmax-pipe <version>``."""
    commit = _checkout_commit(_ROOT)
    if commit is not None:  # a checkout: no need to read the distribution's metadata
        return f"git:{commit}"
    version = package_version()
    commit = built_commit(version)
    return f"git:{commit}" if commit else f"softmax-pipe {version}"
