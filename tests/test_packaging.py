"""pyproject as a published package has it, and every install knows the commit it was built from.

The build tests build a real wheel (pip, setuptools, no build isolation: nothing is
downloaded) from a copy of this tree, unpack it as an install does, and ask the installed
code for its version from outside any checkout.
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
from pathlib import Path

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
    code, or of the copy at ``run_from`` imported ahead of it (as the Docker worker does)."""
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
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    shutil.rmtree(src / "build", ignore_errors=True)
    code = (
        "import json, softmax_core.version as v\n"
        "print(json.dumps([v.__file__, v.code_version()]))\n"
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
    where, version = json.loads(done.stdout)
    assert Path(where).is_relative_to(run_from or site), where  # not this checkout
    return str(version)


def test_every_install_records_the_commit_it_was_built_from(tmp_path: Path) -> None:
    src = _copy_tree(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k != "SOFTMAX_PIPE_COMMIT"}
    _git(src, "init", "-q")
    _git(src, "add", "-A")
    _git(src, "-c", "user.email=ci@example.org", "-c", "user.name=ci", "commit", "-qm", "build")
    sha = _git(src, "rev-parse", "HEAD")
    assert _build_and_install(src, tmp_path / "site-git", env) == f"git:{sha}"
    for package in PACKAGES:  # the wheel carries the type information
        assert (tmp_path / "site-git" / package / "py.typed").is_file(), package

    shutil.rmtree(src / ".git")  # a copy without .git, like the Docker build context
    given = {**env, "SOFTMAX_PIPE_COMMIT": "0123abc"}
    assert _build_and_install(src, tmp_path / "site-given", given) == "git:0123abc"
    app = _copy_tree(tmp_path / "app")  # the worker imports its project folder's copy
    shutil.rmtree(app / ".git", ignore_errors=True)
    site = tmp_path / "site-app"
    assert _build_and_install(src, site, given, run_from=app) == "git:0123abc"
    version = PYPROJECT["project"]["version"]
    assert _build_and_install(src, tmp_path / "site-none", env) == f"softmax-pipe {version}"


def test_the_docker_build_passes_the_commit_in() -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^COPY .*\bbuildinfo\.py\b", dockerfile, re.M)
    assert re.search(r"^ARG SOFTMAX_PIPE_COMMIT\b", dockerfile, re.M)
    compose = yaml.safe_load((REPO / "deploy" / "docker-compose.yml").read_text())
    for name in ("register", "worker"):
        args = compose["services"][name]["build"]["args"]
        assert args["SOFTMAX_PIPE_COMMIT"] == "${SOFTMAX_PIPE_COMMIT:-}", name


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
    from softmax_core.version import package_version

    version = PYPROJECT["project"]["version"]
    assert package_version() == version
    pattern = re.compile(rf"__version__\s*=|{re.escape(version)}")
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
    assert meta["Version"] == project["version"] and meta.get_all("Project-URL")


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

    api = [Registry.open, Model.predict_files, Model.from_bytes, load_mnist, score]
    api += [train, evaluate, sgd.fit, open_model, run_batch_scoring, run_training, run_scoring]
    for function in api:
        for p in inspect.signature(function).parameters.values():
            if p.default is not inspect.Parameter.empty:
                assert p.kind is inspect.Parameter.KEYWORD_ONLY, (function.__qualname__, p.name)
