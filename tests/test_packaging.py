"""pyproject as a published package has it, and every install knows the commit it was built from.

The build tests build a real wheel (pip, setuptools and setuptools-scm, no build isolation:
nothing is downloaded) from a copy of this tree, unpack it as an install does, and ask the
installed code for its versions from outside any checkout.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("softmax_pipe", "softmax_core", "registry", "flows")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=True
    ).stdout.strip()


def _copy_tree(dest: Path) -> Path:
    """The files of this tree that git would commit (tracked, or new and not ignored)."""
    names = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard").splitlines()
    for name in names:
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _build_and_install(
    src: Path, site: Path, env: dict[str, str], *, run_from: Path | None = None
) -> str:
    """Build a wheel of ``src``, unpack it into ``site``; the code_version of the installed
    code, or of the copy at ``run_from`` imported ahead of it (as the Docker worker does).
    The wheel's name carries the version setuptools-scm computed; returned as the code
    version's prefix ``<version> ``."""
    dist = src.parent / f"dist-{site.name}"
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip_wheel, "-w", str(dist), str(src)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env=env,
    )
    (wheel,) = dist.glob("softmax_pipe-*.whl")
    built = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    for left in (src / "build", *src.glob("*.egg-info")):  # a later build must not read them
        shutil.rmtree(left, ignore_errors=True)
    code = (
        "import json, softmax_core.version as v\n"
        "print(json.dumps([v.__file__, v.code_version(), v.package_version()]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=site.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(map(str, filter(None, [run_from, site])))},
    )
    where, code, version = json.loads(done.stdout)
    assert Path(where).is_relative_to(run_from or site), where  # not this checkout
    assert version == built.replace("_", "+"), (version, built)  # the installed metadata's
    return f"{version} {code}"


PRETEND = "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_SOFTMAX_PIPE"
FALLBACK = PYPROJECT["tool"]["setuptools_scm"]["fallback_version"]


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _commit(src: Path, message: str) -> str:
    _git(src, "add", "-A")
    _git(src, "-c", "user.email=ci@example.org", "-c", "user.name=ci", "commit", "-qm", message)
    return _git(src, "rev-parse", "HEAD")


@pytest.mark.slow
def test_every_install_records_the_commit_it_was_built_from(tmp_path: Path) -> None:
    src = _copy_tree(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SETUPTOOLS_SCM_")}
    _git(src, "init", "-q")
    sha = _commit(src, "build")
    short = _git(src, "rev-parse", "--short=9", "HEAD")
    built = _build_and_install(src, tmp_path / "site-git", env)
    # No release tag yet: the dev build after the fallback version, naming its commit.
    assert re.fullmatch(r"\S+\.dev1\+g([0-9a-f]+) git:([0-9a-f]+)", built), built
    commit = built.rsplit("git:", 1)[1]
    assert sha.startswith(commit) and short.startswith(commit[:7]), (sha, built)
    for package in PACKAGES:  # the wheel carries the type information
        assert (tmp_path / "site-git" / package / "py.typed").is_file(), package

    _git(src, "tag", "v9.8.7")  # a release, built on its tag: the version names the commit
    assert _build_and_install(src, tmp_path / "site-tag", env) == "9.8.7 softmax-pipe 9.8.7"
    _append(src / "softmax_core" / "normalize.py", "# changed, not committed\n")
    dirty = _build_and_install(src, tmp_path / "site-dirty", env)
    assert re.fullmatch(rf"9\.8\.8\.dev0\+g{commit}\.d\d{{8}} git:{commit}\+dirty", dirty), dirty

    shutil.rmtree(src / ".git")  # a copy without .git, like the Docker build context
    given = {**env, PRETEND: "1.2.3.dev4+g0123abc"}  # what the Dockerfile passes in
    assert (
        _build_and_install(src, tmp_path / "site-given", given) == "1.2.3.dev4+g0123abc git:0123abc"
    )
    app = _copy_tree(tmp_path / "app")  # the worker imports its project folder's copy
    shutil.rmtree(app / ".git", ignore_errors=True)
    site = tmp_path / "site-app"
    assert _build_and_install(src, site, given, run_from=app).endswith(" git:0123abc")
    none = _build_and_install(src, tmp_path / "site-none", env)
    assert none == f"{FALLBACK} softmax-pipe {FALLBACK}"


def test_a_checkout_reports_its_own_head_after_a_new_commit(tmp_path: Path) -> None:
    """An editable install's version was computed when it was installed; its code version
    is the checkout's HEAD now, so a new commit shows without reinstalling."""
    src = _copy_tree(tmp_path / "src")
    _git(src, "init", "-q")
    first = _commit(src, "first")
    code = "import softmax_core.version as v; print(v.code_version())"

    def code_version() -> str:
        return subprocess.run(
            [sys.executable, "-c", code],
            cwd=src,
            env={**os.environ, "PYTHONPATH": str(src)},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout.strip()

    assert code_version() == f"git:{first}"
    _append(src / "softmax_core" / "normalize.py", "# a change\n")
    assert code_version() == f"git:{first}+dirty"
    second = _commit(src, "second")
    assert second != first and code_version() == f"git:{second}"


def test_the_docker_build_passes_the_version_in() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^ARG SOFTMAX_PIPE_VERSION=$", dockerfile, re.M)
    assert f"{PRETEND}=$SOFTMAX_PIPE_VERSION" in dockerfile
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    for name in ("register", "worker"):
        args = compose["services"][name]["build"]["args"]
        assert args["SOFTMAX_PIPE_VERSION"] == "${SOFTMAX_PIPE_VERSION:-}", name


# --- pyproject ------------------------------------------------------------------------------


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - set(PACKAGES) - {"__future__"}


def _declared() -> set[str]:
    reqs = list(PYPROJECT["project"]["dependencies"])
    for extra in PYPROJECT["project"]["optional-dependencies"].values():
        reqs += extra
    return {re.split(r"[\s<>=!~\[;]", r, maxsplit=1)[0].lower().replace("_", "-") for r in reqs}


def test_every_imported_third_party_module_is_declared() -> None:
    distributions = importlib.metadata.packages_distributions()
    declared = _declared()
    typing_only = {"mypy_boto3_s3"}  # under TYPE_CHECKING, from boto3-stubs (dev)
    missing = {}
    for module in sorted(_imported_top_level_modules() - typing_only):
        dists = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not dists & declared:
            missing[module] = sorted(dists)
    assert missing == {}
    assert {"yaml", "httpx", "rich", "pydantic", "botocore", "pooch", "requests"} <= (
        _imported_top_level_modules()
    )  # the check sees them


def test_the_version_is_defined_once() -> None:
    """By git (setuptools-scm); pyproject holds only the fallback for a copy without git."""
    assert "version" not in PYPROJECT["project"] and "version" in PYPROJECT["project"]["dynamic"]
    pattern = re.compile(rf"__version__\s*=|{re.escape(FALLBACK)}")
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            assert not pattern.search(path.read_text()), path
    for path in (REPO / "deploy").rglob("*"):
        if path.is_file():
            assert not re.search(r"softmax-pipe-worker:\d", path.read_text()), path


def test_metadata_as_a_published_package_has_it() -> None:
    project = PYPROJECT["project"]
    assert project["readme"] == "README.md" and (REPO / "README.md").is_file()
    assert project["license"] and project["requires-python"]
    assert any(c.startswith("Programming Language :: Python :: 3") for c in project["classifiers"])
    assert {"Homepage", "Source", "Issues"} <= set(project["urls"])
    assert project["optional-dependencies"]["dev"][0] == "softmax-pipe[dask,keras]"
    meta = importlib.metadata.metadata("softmax-pipe")
    assert meta["Version"] and meta.get_all("Project-URL")


def test_each_public_package_has_all_and_py_typed() -> None:
    import importlib

    packages = [*PACKAGES, "softmax_core.mnist", "softmax_core.scoring", "softmax_core.report"]
    for name in packages:
        package = importlib.import_module(name)
        exported = package.__all__
        assert exported and len(set(exported)) == len(exported), name
        for item in exported:
            if not hasattr(package, item):
                importlib.import_module(f"{name}.{item}")  # a public submodule
        folder = REPO / name.replace(".", "/")
        if "." not in name:
            assert (folder / "py.typed").is_file(), name


def test_the_python_api_takes_its_options_by_keyword() -> None:
    """What the README's "From Python" names: the data, the model and the request are
    positional, every option (a parameter with a default) is keyword-only."""
    import inspect

    from flows.runner import run_scoring, run_training
    from flows.scoring import run_batch_scoring
    from registry import Registry, open_model
    from softmax_core import sgd
    from softmax_core.mnist import load_mnist
    from softmax_core.model import Model
    from softmax_core.scoring import score
    from softmax_core.train import evaluate, train

    api: list[Callable[..., Any]] = [Registry.open, Model.predict_files, Model.from_bytes]
    api += [load_mnist, score]
    api += [train, evaluate, sgd.fit, open_model, run_batch_scoring, run_training, run_scoring]
    for function in api:
        for p in inspect.signature(function).parameters.values():
            if p.default is not inspect.Parameter.empty:
                assert p.kind is inspect.Parameter.KEYWORD_ONLY, (function.__qualname__, p.name)
